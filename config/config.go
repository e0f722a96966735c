// Package config reads baton.yaml into typed configuration: strict YAML
// (unknown keys and wrong types are errors), defaults, and validation whose
// every error names the file, the line and the field path. Secrets come
// only from environment variables named by *_env keys; a secret written in
// the file is refused.
package config

import (
	"time"
)

// Config is a whole baton.yaml.
type Config struct {
	// Listen is the public listener: webhooks and the bot API.
	Listen string `yaml:"listen"`
	// PublicURL is where Meta and people reach the public listener
	// (https://baton.example.com, behind any proxy): the webhook callback
	// URLs baton doctor checks and the status URL of a data deletion
	// request are built on it. Optional; empty means not known.
	PublicURL string `yaml:"public_url"`
	// TLS, when set, makes the public listener serve https (config/tls.go).
	TLS   *TLS   `yaml:"tls"`
	Admin Admin  `yaml:"admin"`
	Data  string `yaml:"data"`
	// Store, when it names PostgreSQL, replaces the bbolt file of Data
	// (store.go).
	Store    Store    `yaml:"store"`
	Graph    Graph    `yaml:"graph"`
	Webhooks Webhooks `yaml:"webhooks"`
	Delivery Delivery `yaml:"delivery"`
	Apps     []App    `yaml:"apps"`
	Pages    []Page   `yaml:"pages"`
	Log      Log      `yaml:"log"`
	// Inbox configures `baton inbox`, the human-agent inbox (inbox.go).
	Inbox *Inbox `yaml:"inbox"`
	// Cluster, when set, makes baton serve one of several replicas on
	// the PostgreSQL store (cluster.go).
	Cluster *Cluster `yaml:"cluster"`

	// Path is the file the config was read from.
	Path string `yaml:"-"`
}

// Admin is the admin API's own listener.
type Admin struct {
	Listen   string `yaml:"listen"`
	TokenEnv string `yaml:"token_env"`
	Token    Secret `yaml:"-"`
	// TLS serves the admin API over https with the public listener's
	// certificate (the top-level tls section).
	TLS bool `yaml:"tls"`

	InlineToken string `yaml:"token"` // refused: use token_env
}

// Graph is where Meta's Graph API is.
type Graph struct {
	URL     string        `yaml:"url"`
	Version string        `yaml:"version"`
	Timeout time.Duration `yaml:"timeout"`
}

// Webhooks tunes the webhook ingress.
type Webhooks struct {
	// MaxBody is the largest webhook body accepted, in bytes.
	MaxBody int64 `yaml:"max_body"`
	// MaxInflightBytes bounds the bytes of webhook bodies held at once,
	// all requests together; each counts its Content-Length (max_body
	// when it has none), and bodies over 64 KiB hold at most three
	// quarters of it. A webhook whose share is not free within a second
	// is answered 503 with Retry-After (Meta retries). At least twice
	// max_body; default 64 MiB (or twice max_body, if larger).
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// AllowSHA1 accepts requests signed only with the legacy
	// X-Hub-Signature (sha1) header.
	AllowSHA1 bool `yaml:"allow_sha1"`
	// CommitWait lets a durable write that would share its fsync with
	// fewer than 32 others wait up to this long for more (0: never).
	// It trades latency at low load for CPU at high load: see
	// docs/PERFORMANCE.md.
	CommitWait time.Duration `yaml:"commit_wait"`
	// JournalRetention is how long the journal keeps each webhook event as
	// received (default 7 days). Events a pending delivery still reads are
	// kept longer; dead letters keep their own copy.
	JournalRetention time.Duration `yaml:"journal_retention"`
	// LearnNames asks Meta's User Profile API, once per new person and
	// with the page's first hosted app's token, for the person's name:
	// the operator console shows it and the transcript search finds it.
	LearnNames bool `yaml:"learn_names"`
}

// Delivery tunes forwarding to bots; an adapter may override each value.
type Delivery struct {
	MaxAttempts int           `yaml:"max_attempts"`
	Backoff     time.Duration `yaml:"backoff"`
	MaxBackoff  time.Duration `yaml:"max_backoff"`
	Timeout     time.Duration `yaml:"timeout"`
	Concurrency int           `yaml:"concurrency"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | console
}

// App is a participant in thread control. It is hosted when its webhooks
// end at Baton (SecretEnv set, with an Adapter to its bot), external
// otherwise (Page Inbox, a CRM).
type App struct {
	Name           string   `yaml:"name"`
	AppID          string   `yaml:"app_id"`
	SecretEnv      string   `yaml:"secret_env"`
	VerifyTokenEnv string   `yaml:"verify_token_env"`
	TokenEnv       string   `yaml:"token_env"` // bearer token of the bot API
	Adapter        *Adapter `yaml:"adapter"`
	// SendPolicy says what Baton does with the app's sends through /graph.
	SendPolicy SendPolicy `yaml:"send_policy"`

	Secret      Secret `yaml:"-"`
	VerifyToken Secret `yaml:"-"`
	APIToken    Secret `yaml:"-"`

	InlineSecret      string `yaml:"secret"`       // refused
	InlineVerifyToken string `yaml:"verify_token"` // refused
	InlineToken       string `yaml:"token"`        // refused
}

// SendPolicy is what Baton does before a send reaches Meta.
type SendPolicy struct {
	// NotOwner is "refuse" (default: Meta's 10/2018300) or "take": take
	// control first where the page mode and the app's permission allow.
	NotOwner string `yaml:"not_owner"`
}

// Batch is an adapter's batching: at most Max deliveries per request, and
// a request that would hold fewer waits up to Wait for more.
type Batch struct {
	Max  int           `yaml:"max"`
	Wait time.Duration `yaml:"wait"`
}

// MaxBatch bounds batch.max: a request of 1 KB events stays near 1 MB,
// the body limit bots commonly set.
const MaxBatch = 1000

// Hosted reports whether Baton terminates the app's webhooks.
func (a *App) Hosted() bool { return a.SecretEnv != "" }

// Adapter says how events reach a hosted app's bot.
type Adapter struct {
	Type      string `yaml:"type"` // http (Baton's envelope) or messenger (Meta's format)
	URL       string `yaml:"url"`
	SecretEnv string `yaml:"secret_env"`
	// Standby asks for copies of events while the app does not own the
	// thread.
	Standby     bool          `yaml:"standby"`
	Timeout     time.Duration `yaml:"timeout"`
	Concurrency int           `yaml:"concurrency"`
	MaxAttempts int           `yaml:"max_attempts"`
	// AllowLinkLocal lets the URL, and the connections to it, reach a
	// link-local or cloud metadata address (169.254.169.254,
	// metadata.google.internal...), refused otherwise.
	AllowLinkLocal bool `yaml:"allow_link_local"`
	// Batch, when set, sends several ready deliveries of the bot in one
	// request (each thread's in order); nil sends one per request.
	Batch *Batch `yaml:"batch"`

	Secret Secret `yaml:"-"`

	InlineSecret string `yaml:"secret"` // refused
}

// Page is a Facebook Page and the apps on it.
type Page struct {
	// ID is the Facebook Page id, or the Instagram professional account
	// id for an Instagram page.
	ID   string `yaml:"id"`
	Mode string `yaml:"mode"` // conversation_routing | zero_config | legacy
	// Platform is messenger (default) or instagram: an Instagram
	// professional account, whose webhooks come with object "instagram"
	// and whose inbox is Instagram's (1217981644879628).
	Platform string `yaml:"platform"`
	// Primary is the default app (Conversation Routing) or primary
	// receiver (legacy).
	Primary   string   `yaml:"primary"`
	Secondary []string `yaml:"secondary"`
	// Takeover lists the apps allowed to take control (Conversation
	// Routing's per-app permission); default: the primary.
	Takeover []string `yaml:"takeover"`
	// Tokens are the page access tokens of the hosted apps, by app name.
	Tokens map[string]PageToken `yaml:"tokens"`
	// Rules hand threads between the apps without code.
	Rules Rules `yaml:"rules"`
}

// PageToken is one app's page access token, and optionally a Baton token
// of the app for this page alone.
type PageToken struct {
	TokenEnv string `yaml:"token_env"`
	Token    Secret `yaml:"-"`
	// APITokenEnv names a Baton token that stands for the app on this
	// page only: a bot (an SDK client per page) that calls /graph/me/...
	// with it is taken to mean this page. Optional; the app's token_env
	// still works on every page.
	APITokenEnv string `yaml:"api_token_env"`
	APIToken    Secret `yaml:"-"`

	InlineToken    string `yaml:"token"`     // refused
	InlineAPIToken string `yaml:"api_token"` // refused
}

// Page modes.
const (
	ModeConversationRouting = "conversation_routing"
	ModeZeroConfig          = "zero_config"
	ModeLegacy              = "legacy"
)

// Page platforms.
const (
	PlatformMessenger = "messenger"
	PlatformInstagram = "instagram"
)

// Defaults.
const (
	DefaultListen      = ":8080"
	DefaultAdminListen = "127.0.0.1:8081"
	DefaultData        = "./baton.db"
	DefaultGraphURL    = "https://graph.facebook.com"
	DefaultVersion     = "v21.0"
	DefaultMaxBody     = 1 << 20
	// DefaultMaxInflightBytes is 64 webhooks of max_body being read at
	// once, thousands of Meta's usual few-KB ones.
	DefaultMaxInflightBytes = 64 << 20
	// DefaultJournalRetention is a week of webhooks to look back on.
	DefaultJournalRetention = 7 * 24 * time.Hour
)

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Listen, DefaultListen)
	def(&c.Admin.Listen, DefaultAdminListen)
	if c.Store.Postgres == nil {
		def(&c.Data, DefaultData)
	}
	def(&c.Graph.URL, DefaultGraphURL)
	def(&c.Graph.Version, DefaultVersion)
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "json")
	if c.Graph.Timeout == 0 {
		c.Graph.Timeout = 10 * time.Second
	}
	if c.Webhooks.MaxBody == 0 {
		c.Webhooks.MaxBody = DefaultMaxBody
	}
	if c.Webhooks.MaxInflightBytes == 0 {
		c.Webhooks.MaxInflightBytes = max(DefaultMaxInflightBytes, 2*c.Webhooks.MaxBody)
	}
	if c.Webhooks.JournalRetention == 0 {
		c.Webhooks.JournalRetention = DefaultJournalRetention
	}
	c.TLS.applyDefaults()
	c.Inbox.applyDefaults(c)
	c.Cluster.applyDefaults()
	d := &c.Delivery
	if d.MaxAttempts == 0 {
		d.MaxAttempts = 10
	}
	if d.Backoff == 0 {
		d.Backoff = 500 * time.Millisecond
	}
	if d.MaxBackoff == 0 {
		d.MaxBackoff = 5 * time.Minute
	}
	if d.Timeout == 0 {
		d.Timeout = 10 * time.Second
	}
	if d.Concurrency == 0 {
		d.Concurrency = 16
	}
	for i := range c.Apps {
		def(&c.Apps[i].SendPolicy.NotOwner, "refuse")
		if a := c.Apps[i].Adapter; a != nil {
			if a.Timeout == 0 {
				a.Timeout = d.Timeout
			}
			if a.Concurrency == 0 {
				a.Concurrency = d.Concurrency
			}
			if a.MaxAttempts == 0 {
				a.MaxAttempts = d.MaxAttempts
			}
			if a.Batch != nil && a.Batch.Max == 0 {
				a.Batch.Max = 100
			}
		}
	}
	for i := range c.Pages {
		p := &c.Pages[i]
		def(&p.Mode, ModeConversationRouting)
		def(&p.Platform, PlatformMessenger)
	}
}

// App returns the app named name.
func (c *Config) App(name string) (*App, bool) {
	for i := range c.Apps {
		if c.Apps[i].Name == name {
			return &c.Apps[i], true
		}
	}
	return nil, false
}
