// Package fakeconfig is the fake Messenger Platform's configuration: its
// apps, pages and Settings, how they are read from YAML and checked.
package fakeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/batonhq/baton/messenger"
)

// Mode is a page's thread-control model.
type Mode string

// Page modes (REFERENCE §5).
const (
	// ModeConversationRouting is the current model: a default app, idle
	// threads, take for apps with the takeover permission.
	ModeConversationRouting Mode = "conversation_routing"
	// ModeZeroConfig is Conversation Routing with no default app: every app
	// gets messaging webhooks, take is refused, request works.
	ModeZeroConfig Mode = "zero_config"
	// ModeLegacy is the Handover Protocol v1 with primary and secondary
	// receivers, kept for compatibility tests.
	ModeLegacy Mode = "legacy"
)

// Platforms a page can be on (PageConfig.Platform).
const (
	// PlatformMessenger is a Facebook Page on Messenger (the default).
	PlatformMessenger = "messenger"
	// PlatformInstagram is an Instagram professional account: webhooks
	// with object "instagram" whose entry id is the account id, Instagram's
	// inbox (messenger.InstagramInboxAppID) in place of the Page Inbox, and
	// Instagram's subcodes in refusals (100/2534037 not the thread owner,
	// 10/2534022 outside the window). Conversation Routing, its calls and
	// its windows are Messenger's.
	PlatformInstagram = "instagram"
)

// Config describes the fake platform: its apps, its pages and the settings
// for behaviour the reference could not confirm.
type Config struct {
	// Listen is the address `baton platform` serves on.
	Listen string `yaml:"listen"`
	// Start is the fake clock's first reading (RFC 3339); empty means now.
	Start string `yaml:"start"`
	// PublicURL is how bots reach the platform, printed at start; defaults
	// to http://<listen>.
	PublicURL string       `yaml:"public_url"`
	Apps      []AppConfig  `yaml:"apps"`
	Pages     []PageConfig `yaml:"pages"`
	Settings  Settings     `yaml:"settings"`
}

// AppConfig is a Facebook app known to the platform.
type AppConfig struct {
	Name        string       `yaml:"name"`
	ID          messenger.ID `yaml:"id"`
	Secret      string       `yaml:"secret"`
	VerifyToken string       `yaml:"verify_token"`
	// CallbackURL receives the app's webhooks; empty means the app gets
	// none (like the Page Inbox, which is Meta's own).
	CallbackURL string `yaml:"callback_url"`
	// SubscribedFields are the webhook fields the app is subscribed to on
	// every page it is connected to; empty means all Messenger fields.
	SubscribedFields []string `yaml:"subscribed_fields"`
}

// PageConfig is a Facebook Page and the apps connected to it.
type PageConfig struct {
	// ID is the page id, or an Instagram account's id.
	ID   messenger.ID `yaml:"id"`
	Name string       `yaml:"name"`
	Mode Mode         `yaml:"mode"`
	// Platform is PlatformMessenger ("messenger", default) or
	// PlatformInstagram ("instagram").
	Platform string `yaml:"platform"`
	// DefaultApp (Conversation Routing) answers idle threads; legacy pages
	// use it as the primary receiver. An app name or id.
	DefaultApp string `yaml:"default_app"`
	// SocialRoute is the app that takes control when a person writes into
	// an idle thread (organic entry-point routing); empty leaves it idle.
	SocialRoute string `yaml:"social_route"`
	// LinkRoutes gives control to an app when a person arrives with an
	// m.me ref (link routing): ref -> app.
	LinkRoutes map[string]string `yaml:"link_routes"`
	// Apps connected to the page, by app name.
	Apps map[string]PageAppConfig `yaml:"apps"`
	// NoPageInbox leaves Meta's inbox unconnected: the Page Inbox, or on
	// an Instagram account Instagram's inbox.
	NoPageInbox bool `yaml:"no_page_inbox"`
	// MultiApp is what the page's messaging_feature_status reports as
	// msgr_multi_app (ig_multi_app on Instagram): whether Conversation
	// Routing is on. Unset means on unless the mode is legacy; false
	// shows a page whose Conversation Routing was never turned on in Page
	// settings, whatever its mode.
	MultiApp *bool `yaml:"multi_app"`
}

// PageAppConfig connects an app to a page.
type PageAppConfig struct {
	// Token is the page access token the app calls the Graph API with.
	Token string `yaml:"token"`
	// Takeover is the per-app "take control of conversations" permission.
	Takeover bool `yaml:"takeover"`
	// Scopes are the permissions debug_token reports for the token; empty
	// means every permission messaging needs on the page's platform
	// (DefaultScopes). subscribed_apps refuses a token without
	// pages_manage_metadata, as Meta does.
	Scopes []string `yaml:"scopes"`
}

// DefaultScopes are the permissions of a page token whose config names
// none: what Messenger, or on an Instagram account Instagram messaging,
// needs (REFERENCE §3.4; Meta's Instagram messaging requirements).
func DefaultScopes(platform string) []string {
	if platform == PlatformInstagram {
		return []string{"instagram_basic", "instagram_manage_messages", "pages_manage_metadata", "pages_show_list"}
	}
	return []string{"pages_messaging", "pages_manage_metadata", "pages_show_list"}
}

// Settings choose the platform's behaviour where the reference is
// [UNCONFIRMED]; each default is the reference's suggestion.
type Settings struct {
	// TakeSuccessBody is "success" ({"success":true}, default) or
	// "thread_owner" (the shape an older doc page shows).
	TakeSuccessBody string `yaml:"take_success_body"`
	// IdleThreadOwnerBody is "data" ({"data":[]}, default) or "object" ({}).
	IdleThreadOwnerBody string `yaml:"idle_thread_owner_body"`
	// MetadataLimit is the longest thread-control metadata accepted
	// (default 1000 characters; negative means no limit).
	MetadataLimit int `yaml:"metadata_limit"`
	// ExpiryWebhook sends the expired owner a pass_thread_control with a
	// null new owner when control lapses after 24 h (default off: Meta
	// sends none, REFERENCE §0.1).
	ExpiryWebhook bool `yaml:"expiry_webhook"`
	// PassWebhookTo is "new_owner" (default) or "all" subscribed apps.
	PassWebhookTo string `yaml:"pass_webhook_to"`
	// TakeWebhookTo is "previous_owner" (default) or "all" subscribed apps.
	TakeWebhookTo string `yaml:"take_webhook_to"`
	// RoutingWebhook sends a pass_thread_control (from null) when entry
	// routing gives an app an idle thread (default off: Meta sends none
	// for social or link routing, REFERENCE §0.1).
	RoutingWebhook bool `yaml:"routing_webhook"`
	// RequireAppSecretProof refuses calls without a valid appsecret_proof,
	// like an app with "Require App Secret" turned on.
	RequireAppSecretProof bool `yaml:"require_appsecret_proof"`
	// WebhookTimeout is how long a callback may take (default 5s, Meta's).
	WebhookTimeout time.Duration `yaml:"webhook_timeout"`
	// WebhookRetries is how often a failed webhook is sent again (default 3).
	WebhookRetries int `yaml:"webhook_retries"`
	// WebhookRetryDelay is the first pause before a retry, doubling after
	// each (default 200ms; real time).
	WebhookRetryDelay time.Duration `yaml:"webhook_retry_delay"`
	// MaxBatch lets one POST carry up to this many queued entries for an
	// app (default 1: one event per request).
	MaxBatch int `yaml:"max_batch"`
	// UnsubscribeAfter unsubscribes an app from its pages once its webhooks
	// have failed for this long on the platform clock (default 1h, Meta's).
	UnsubscribeAfter time.Duration `yaml:"unsubscribe_after"`

	// Meta's disorder (REFERENCE §0.1, §2.1, §3.3). Every random choice
	// is drawn from Seed, so that a test can choose its disorder and see
	// it again.

	// Seed drives the webhook sender's random choices (order, delays,
	// repeats, batch order). Each app draws from its own sequence of the
	// seed, so the same seed and the same webhooks queued for an app give
	// the same choices whatever the other apps get.
	Seed int64 `yaml:"seed"`
	// WebhookOrder is "per_app" (default: an app's webhooks leave one at a
	// time in the order they were queued) or "shuffled" (each POST is
	// drawn at random from the first WebhookWindow webhooks queued for the
	// app, as retries make Meta's arrive out of order). Either way every
	// app's webhooks travel apart from the other apps', so the copies of
	// one event can reach different apps in either order.
	WebhookOrder string `yaml:"webhook_order"`
	// WebhookWindow is how many of an app's queued webhooks a shuffled
	// POST is drawn from (default 10): how far a webhook can overtake.
	WebhookWindow int `yaml:"webhook_window"`
	// WebhookDelay holds each POST for a random time between Min and Max
	// (real time, drawn per POST) before it is sent, after the app's POST
	// before it; webhooks that queue meanwhile may go in the same batch or,
	// shuffled, overtake. Zero means none.
	WebhookDelay DelayRange `yaml:"webhook_delay"`
	// WebhookRepeat is the probability (0 to 1) that a delivered POST is
	// delivered again later with the same body, as Meta's retries do; the
	// repeat joins the end of the app's queue and is not repeated itself.
	WebhookRepeat float64 `yaml:"webhook_repeat"`
	// BatchOrder is "sent" (default: the entries of a batched POST, see
	// MaxBatch, in the order they were queued) or "shuffled" (in a random
	// order; each keeps its own time and timestamp).
	BatchOrder string `yaml:"batch_order"`

	// The Page Inbox and Meta AI (REFERENCE §0.1, §5).

	// InboxDoneTo is where control goes when the inbox marks a thread done:
	// "default_app" (default; idle on a page without one) or "idle". How
	// Meta's inbox does this under Conversation Routing is undocumented.
	InboxDoneTo string `yaml:"inbox_done_to"`
	// InboxDoneWebhook sends the app that gets the thread a
	// pass_thread_control from the inbox when a thread is marked done
	// (default off: control moves and Meta sends no webhook).
	InboxDoneWebhook bool `yaml:"inbox_done_webhook"`
	// AIReplyTakesControl makes a Meta AI reply take the thread for the
	// inbox as a staff reply does (default off: control does not move).
	AIReplyTakesControl bool `yaml:"ai_reply_takes_control"`
	// ExtendCanShorten lets an extend_thread_control with a duration
	// shorter than what is left shorten control. Meta documents extend as
	// extending; whether a shorter one shortens is [UNCONFIRMED]
	// (REFERENCE §0.1): the default keeps the later expiry.
	ExtendCanShorten bool `yaml:"extend_can_shorten"`
}

// DelayRange is a span of real time from Min to Max, such as
// {min: 10ms, max: 200ms} in YAML.
type DelayRange struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// PageInboxName is the name the platform gives Meta's Page Inbox app, which
// every page has unless its config says no_page_inbox.
const PageInboxName = "page-inbox"

// InstagramInboxName is the name the platform gives Instagram's inbox app,
// which every Instagram account has unless its config says no_page_inbox.
const InstagramInboxName = "instagram-inbox"

// Values of the settings that choose among a few behaviours.
const (
	OrderPerApp        = "per_app"
	OrderShuffled      = "shuffled"
	OrderSent          = "sent"
	InboxDoneToDefault = "default_app"
	InboxDoneToIdle    = "idle"
)

// validate reports each setting whose value is not one of its choices.
func (s *Settings) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("settings: "+format, a...)) }
	if o := s.WebhookOrder; o != "" && o != OrderPerApp && o != OrderShuffled {
		bad("webhook_order %q is not per_app or shuffled", o)
	}
	if o := s.BatchOrder; o != "" && o != OrderSent && o != OrderShuffled {
		bad("batch_order %q is not sent or shuffled", o)
	}
	if to := s.InboxDoneTo; to != "" && to != InboxDoneToDefault && to != InboxDoneToIdle {
		bad("inbox_done_to %q is not default_app or idle", to)
	}
	if s.WebhookWindow < 0 {
		bad("webhook_window %d is negative", s.WebhookWindow)
	}
	if d := s.WebhookDelay; d.Min < 0 || d.Max < d.Min {
		bad("webhook_delay {min: %s, max: %s} needs 0 <= min <= max", d.Min, d.Max)
	}
	if p := s.WebhookRepeat; p < 0 || p > 1 {
		bad("webhook_repeat %v is not a probability from 0 to 1", p)
	}
	return errs
}

// Defaults for Settings.
const (
	defaultMetadataLimit = 1000
	defaultTimeout       = 5 * time.Second
	defaultRetries       = 3
	defaultRetryDelay    = 200 * time.Millisecond
	defaultWindow        = 10
)

// ApplyDefaults fills in the default of every setting left unset.
func (s *Settings) ApplyDefaults() {
	if s.TakeSuccessBody == "" {
		s.TakeSuccessBody = "success"
	}
	if s.IdleThreadOwnerBody == "" {
		s.IdleThreadOwnerBody = "data"
	}
	if s.MetadataLimit == 0 {
		s.MetadataLimit = defaultMetadataLimit
	}
	if s.PassWebhookTo == "" {
		s.PassWebhookTo = "new_owner"
	}
	if s.TakeWebhookTo == "" {
		s.TakeWebhookTo = "previous_owner"
	}
	if s.WebhookTimeout <= 0 {
		s.WebhookTimeout = defaultTimeout
	}
	if s.WebhookRetries == 0 {
		s.WebhookRetries = defaultRetries
	}
	if s.WebhookRetries < 0 {
		s.WebhookRetries = 0
	}
	if s.WebhookRetryDelay <= 0 {
		s.WebhookRetryDelay = defaultRetryDelay
	}
	if s.MaxBatch <= 0 {
		s.MaxBatch = 1
	}
	if s.UnsubscribeAfter <= 0 {
		s.UnsubscribeAfter = time.Hour
	}
	if s.WebhookOrder == "" {
		s.WebhookOrder = OrderPerApp
	}
	if s.WebhookWindow <= 0 {
		s.WebhookWindow = defaultWindow
	}
	if s.BatchOrder == "" {
		s.BatchOrder = OrderSent
	}
	if s.InboxDoneTo == "" {
		s.InboxDoneTo = InboxDoneToDefault
	}
}

// AllFields are the Messenger webhook fields an app subscribes to when its
// config names none.
var AllFields = []string{
	"messages", "message_echoes", "message_reads", "message_deliveries", "messaging_postbacks",
	"messaging_referrals", "messaging_optins", "messaging_handovers", "standby",
	"messaging_policy_enforcement", "message_reactions",
}

// LoadConfig reads a platform config from a YAML file; unknown keys are
// errors.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read platform config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes and checks a platform config.
func ParseConfig(b []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate reports every inconsistency in the config at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	names := map[string]bool{}
	ids := map[messenger.ID]bool{}
	for i, a := range c.Apps {
		switch {
		case a.Name == "":
			bad("apps[%d]: name is required", i)
		case names[a.Name]:
			bad("apps[%d]: duplicate name %q", i, a.Name)
		}
		names[a.Name] = true
		switch {
		case a.ID == "":
			bad("apps[%d] (%s): id is required", i, a.Name)
		case ids[a.ID]:
			bad("apps[%d] (%s): duplicate id %s", i, a.Name, a.ID)
		}
		ids[a.ID] = true
		if a.CallbackURL != "" && a.Secret == "" {
			bad("apps[%d] (%s): secret is required to sign webhooks to callback_url", i, a.Name)
		}
	}
	known := func(ref string) bool {
		if ref == "" || names[ref] || ids[messenger.ID(ref)] {
			return true
		}
		switch ref {
		case string(messenger.PageInboxAppID), PageInboxName, string(messenger.InstagramInboxAppID), InstagramInboxName:
			return true
		}
		return false
	}
	tokens := map[string]bool{}
	for i, p := range c.Pages {
		where := fmt.Sprintf("pages[%d] (%s)", i, p.ID)
		if p.ID == "" {
			bad("pages[%d]: id is required", i)
		}
		switch p.Mode {
		case "", ModeConversationRouting:
			if p.DefaultApp == "" {
				bad("%s: mode conversation_routing needs default_app (use mode zero_config for none)", where)
			}
		case ModeZeroConfig:
			if p.DefaultApp != "" {
				bad("%s: mode zero_config has no default_app", where)
			}
		case ModeLegacy:
			if p.DefaultApp == "" {
				bad("%s: mode legacy needs default_app (the primary receiver)", where)
			}
		default:
			bad("%s: mode %q is not conversation_routing, zero_config or legacy", where, p.Mode)
		}
		if p.Platform != "" && p.Platform != PlatformMessenger && p.Platform != PlatformInstagram {
			bad("%s: platform %q is not messenger or instagram", where, p.Platform)
		}
		for _, ref := range append([]string{p.DefaultApp, p.SocialRoute}, mapValues(p.LinkRoutes)...) {
			if !known(ref) {
				bad("%s: app %q is not in apps", where, ref)
			}
		}
		for name, pa := range p.Apps {
			if !names[name] {
				bad("%s: apps.%s is not in apps", where, name)
			}
			if pa.Token == "" {
				bad("%s: apps.%s.token is required", where, name)
			} else if tokens[pa.Token] {
				bad("%s: apps.%s.token is used twice; a token names one (page, app)", where, name)
			}
			tokens[pa.Token] = true
			for j, sc := range pa.Scopes {
				if sc == "" {
					bad("%s: apps.%s.scopes[%d] is empty", where, name, j)
				}
			}
		}
	}
	errs = append(errs, c.Settings.validate()...)
	return errors.Join(errs...)
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
