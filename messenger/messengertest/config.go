package messengertest

import "github.com/batonhq/baton/messenger/messengertest/fakeconfig"

// The platform's configuration lives in package fakeconfig; these are its
// names here.
type (
	Mode          = fakeconfig.Mode
	Config        = fakeconfig.Config
	AppConfig     = fakeconfig.AppConfig
	PageConfig    = fakeconfig.PageConfig
	PageAppConfig = fakeconfig.PageAppConfig
	Settings      = fakeconfig.Settings
	DelayRange    = fakeconfig.DelayRange
)

// Page modes, platforms and setting values (see package fakeconfig).
const (
	ModeConversationRouting = fakeconfig.ModeConversationRouting
	ModeZeroConfig          = fakeconfig.ModeZeroConfig
	ModeLegacy              = fakeconfig.ModeLegacy
	PlatformMessenger       = fakeconfig.PlatformMessenger
	PlatformInstagram       = fakeconfig.PlatformInstagram
	PageInboxName           = fakeconfig.PageInboxName
	InstagramInboxName      = fakeconfig.InstagramInboxName
	OrderPerApp             = fakeconfig.OrderPerApp
	OrderShuffled           = fakeconfig.OrderShuffled
	OrderSent               = fakeconfig.OrderSent
	InboxDoneToDefault      = fakeconfig.InboxDoneToDefault
	InboxDoneToIdle         = fakeconfig.InboxDoneToIdle
)

// AllFields are the Messenger webhook fields an app subscribes to when its
// config names none.
var AllFields = fakeconfig.AllFields

// LoadConfig reads a platform config from a YAML file; unknown keys are
// errors.
func LoadConfig(path string) (*Config, error) { return fakeconfig.LoadConfig(path) }

// ParseConfig decodes and checks a platform config.
func ParseConfig(b []byte) (*Config, error) { return fakeconfig.ParseConfig(b) }
