package config

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Inbox configures `baton inbox`: the human-agent inbox, a hosted app of
// its own (apps[].name = app) whose bot is the inbox itself. It reads the
// app's adapter secret and Baton token from the same file.
type Inbox struct {
	// Listen is where the inbox serves Baton's deliveries (POST /baton)
	// and the agents' browsers.
	Listen string `yaml:"listen"`
	// App names the inbox's app in apps: hosted, with an http adapter
	// pointing at this inbox and a token_env.
	App string `yaml:"app"`
	// Data is the inbox's own bbolt file: claims, notes, unread marks,
	// personas and the conversations it has.
	Data string `yaml:"data"`
	// BatonURL is Baton's public listener as the inbox reaches it
	// (default: http://127.0.0.1 on the port of listen above).
	BatonURL string `yaml:"baton_url"`
	// Agents are the people who sign in.
	Agents []Agent   `yaml:"agents"`
	Auth   InboxAuth `yaml:"auth"`
	Done   InboxDone `yaml:"done"`
	Hold   InboxHold `yaml:"hold"`
	Canned []Canned  `yaml:"canned_replies"`
	// WarnBefore is how long before Baton's return rule hands a
	// conversation back that the agents are warned.
	WarnBefore time.Duration `yaml:"warn_before"`
}

// Agent is one person who answers in the inbox.
type Agent struct {
	Name        string `yaml:"name"`         // sign-in name: lower-case letters, digits, - _ .
	DisplayName string `yaml:"display_name"` // what colleagues (and, with a persona, the person) see
	// PasswordHash is a bcrypt hash (`baton inbox -hash-password`). A
	// hash is not a secret, so it may be written in the file. Empty: the
	// agent signs in only through auth.header.
	PasswordHash string `yaml:"password_hash"`
	// Persona sends the agent's replies under a Messenger persona with the
	// display name and Picture, so the person sees who answers.
	Persona bool   `yaml:"persona"`
	Picture string `yaml:"picture"` // the persona's picture, an https URL
}

// InboxAuth is what the inbox believes of the proxies in front of it.
type InboxAuth struct {
	// Header carries the agent's name (X-Forwarded-User...) when an
	// identity provider signs agents in; trusted only from
	// TrustedProxies.
	Header string `yaml:"header"`
	// TrustedProxies are the proxies (IPs or CIDRs) whose
	// X-Forwarded-For and X-Forwarded-Proto are believed: behind one
	// that terminates TLS, sign-ins are limited per agent's address and
	// the session cookie is Secure. Required with Header.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// InboxDone is what Done does.
type InboxDone struct {
	Action         string `yaml:"action"`          // pass (to the page's default app) or release
	ClosingMessage string `yaml:"closing_message"` // the dialog's default; empty: none
}

// InboxHold is how long an agent's activity holds Baton's return rule;
// the inbox renews a claim while the agent keeps it.
type InboxHold struct {
	Typing time.Duration `yaml:"typing"`
	Claim  time.Duration `yaml:"claim"`
}

// Canned is a prepared reply.
type Canned struct {
	Title string `yaml:"title"`
	Text  string `yaml:"text"`
}

// Done actions.
const (
	DonePass    = "pass"
	DoneRelease = "release"
)

// Inbox defaults.
const (
	DefaultInboxListen = "127.0.0.1:9003"
	DefaultInboxData   = "./inbox.db"
	DefaultTypingHold  = 2 * time.Minute
	DefaultClaimHold   = 5 * time.Minute
	DefaultWarnBefore  = 2 * time.Minute
	// MaxInboxHold is Baton's longest hold (handover.MaxHold).
	MaxInboxHold = time.Hour
)

func (in *Inbox) applyDefaults(c *Config) {
	if in == nil {
		return
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&in.Listen, DefaultInboxListen)
	def(&in.Data, DefaultInboxData)
	if in.BatonURL == "" {
		scheme := "http"
		if c.TLS != nil {
			scheme = "https"
		}
		if _, port, err := net.SplitHostPort(c.Listen); err == nil {
			in.BatonURL = scheme + "://127.0.0.1:" + port
		}
	}
	def(&in.Done.Action, DonePass)
	if in.Hold.Typing == 0 {
		in.Hold.Typing = DefaultTypingHold
	}
	if in.Hold.Claim == 0 {
		in.Hold.Claim = DefaultClaimHold
	}
	if in.WarnBefore == 0 {
		in.WarnBefore = DefaultWarnBefore
	}
	for i := range in.Agents {
		def(&in.Agents[i].DisplayName, in.Agents[i].Name)
	}
}

// inbox checks the inbox section against the rest of the file.
func (v *validator) inbox(c *Config) {
	in := c.Inbox
	if in == nil {
		return
	}
	if _, _, err := net.SplitHostPort(in.Listen); err != nil {
		v.bad("inbox.listen", "%q is not host:port", in.Listen)
	}
	switch a, ok := c.App(in.App); {
	case in.App == "":
		v.bad("inbox.app", "required: the inbox's app name in apps")
	case !ok:
		v.bad("inbox.app", "%q is not an app in apps (known: %s)", in.App, strings.Join(appNames(c), ", "))
	case !a.Hosted() || a.Adapter == nil || a.Adapter.Type != "http":
		v.bad("inbox.app", "%q must be a hosted app with an http adapter: the inbox receives its events", in.App)
	case a.TokenEnv == "":
		v.bad("inbox.app", "%q has no token_env: the inbox calls Baton with the app's token", in.App)
	}
	if u, err := url.Parse(in.BatonURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.bad("inbox.baton_url", "%q is not an http(s) URL", in.BatonURL)
	} else {
		in.BatonURL = strings.TrimSuffix(in.BatonURL, "/")
	}
	if len(in.Agents) == 0 {
		v.bad("inbox.agents", "at least one agent is required")
	}
	names := map[string]bool{}
	for i := range in.Agents {
		v.agent(fmt.Sprintf("inbox.agents[%d]", i), &in.Agents[i], in.Auth.Header != "", names)
	}
	if h := in.Auth.Header; h != "" {
		if http.CanonicalHeaderKey(h) == "" || strings.ContainsAny(h, " :\t") {
			v.bad("inbox.auth.header", "%q is not a header name", h)
		}
		if len(in.Auth.TrustedProxies) == 0 {
			v.bad("inbox.auth.trusted_proxies", "required with header: the proxies whose header is believed")
		}
	}
	for i, p := range in.Auth.TrustedProxies {
		if !validProxy(p) {
			v.bad(fmt.Sprintf("inbox.auth.trusted_proxies[%d]", i), "%q is not an IP address or a CIDR such as 10.0.0.0/8", p)
		}
	}
	switch in.Done.Action {
	case DonePass, DoneRelease:
	default:
		v.bad("inbox.done.action", "%q is not pass or release", in.Done.Action)
	}
	if n := utf8.RuneCountInString(in.Done.ClosingMessage); n > 2000 {
		v.bad("inbox.done.closing_message", "%d characters: Messenger takes up to 2000", n)
	}
	for _, h := range []struct {
		field string
		d     time.Duration
	}{{"inbox.hold.typing", in.Hold.Typing}, {"inbox.hold.claim", in.Hold.Claim}} {
		if h.d < time.Second || h.d > MaxInboxHold {
			v.bad(h.field, "%s: want 1s up to %s", h.d, MaxInboxHold)
		}
	}
	if in.WarnBefore < 0 {
		v.bad("inbox.warn_before", "%s: want 0 or more", in.WarnBefore)
	}
	for i, cr := range in.Canned {
		f := fmt.Sprintf("inbox.canned_replies[%d]", i)
		if strings.TrimSpace(cr.Title) == "" {
			v.bad(f+".title", "required")
		}
		if strings.TrimSpace(cr.Text) == "" {
			v.bad(f+".text", "required")
		}
	}
}

func (v *validator) agent(path string, a *Agent, header bool, names map[string]bool) {
	switch {
	case a.Name == "":
		v.bad(path+".name", "required")
	case !agentNameRE.MatchString(a.Name):
		v.bad(path+".name", "%q must be lower-case letters, digits, '.', '-' and '_'", a.Name)
	case names[a.Name]:
		v.bad(path+".name", "%q is used by another agent", a.Name)
	}
	names[a.Name] = true
	switch {
	case a.PasswordHash == "" && !header:
		v.bad(path+".password_hash", "required without auth.header: a bcrypt hash from `baton inbox -hash-password`")
	case a.PasswordHash != "":
		// A cheap hash is a fast offline guess for whoever reads the
		// file, and a wrong name (checked against a hash of the default
		// cost) would take longer than a wrong password.
		switch cost, err := bcrypt.Cost([]byte(a.PasswordHash)); {
		case err != nil:
			v.bad(path+".password_hash", "not a bcrypt hash (make one with `baton inbox -hash-password`)")
		case cost < bcrypt.DefaultCost:
			v.bad(path+".password_hash", "bcrypt cost %d is too cheap to guess against: at least %d (make one with `baton inbox -hash-password`)", cost, bcrypt.DefaultCost)
		}
	}
	if a.Persona {
		if u, err := url.Parse(a.Picture); err != nil || u.Scheme != "https" || u.Host == "" {
			v.bad(path+".picture", "required with persona: an https URL of the persona's picture")
		}
	}
}

func validProxy(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	_, _, err := net.ParseCIDR(s)
	return err == nil
}
