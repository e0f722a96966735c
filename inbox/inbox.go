// Package inbox is Baton's human-agent inbox, run by `baton inbox`: a
// hosted app behind Baton's http adapter whose bot is a web page for a
// support team. Agents sign in (accounts with bcrypt hashes, or an
// identity provider's header behind a trusted proxy), see the
// conversations handed to the inbox with what was said before, claim
// them or assign them to a colleague, reply (under a Messenger persona
// with their name), keep private notes, and press Done to hand the
// conversation back, with a closing message. While an agent has a
// conversation claimed or is typing, the inbox holds Baton's return rule
// off (POST /v1/threads/.../activity), and it warns before Baton hands a
// conversation back.
//
// Its state (claims, notes, unread marks, personas, the conversations it
// has) lives in its own bbolt file; at start it finds again at Baton the
// conversations it owns and its file lacks, and fills each from Baton's
// transcript (restart.go). Files by concern: auth.go
// (agents, sessions, CSRF), conversations.go and store.go (what it
// keeps), batonapi (the calls to Baton), handlers.go (the agents' API),
// work.go (claims renewed, return times, profiles, transcripts),
// web/live (live updates), static/ (the page).
package inbox

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/inbox/batonapi"
	"github.com/batonhq/baton/web/live"
	"github.com/batonhq/baton/web/signin"
)

//go:embed static
var static embed.FS

// Done actions.
const (
	DonePass    = "pass"    // pass the thread to the page's default app
	DoneRelease = "release" // release it to idle
)

// Canned is a prepared reply.
type Canned struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

// Options configure an Inbox.
type Options struct {
	App        string // the inbox's app name in baton.yaml
	AppID      string // its Facebook app id: tells the agents' echoes from the bots'
	HookSecret string // the http adapter's secret (whsec_...)
	Baton      string // Baton's public URL
	Token      string // the inbox app's Baton token
	Data       string // the inbox's bbolt file
	Agents     []Agent
	Proxy      ProxyAuth
	Done       string // DonePass (default) or DoneRelease
	// ClosingMessage is the Done dialog's default closing message.
	ClosingMessage string
	Canned         []Canned
	TypingHold     time.Duration // how long typing holds the return rule (default 2m)
	ClaimHold      time.Duration // how long a claim holds it, renewed while kept (default 5m)
	WarnBefore     time.Duration // warn this long before a return (default 2m)
	// AgentApps are the apps (by name) whose replies are people's too:
	// Meta's Page Inbox and Instagram's inbox, as the config names them.
	AgentApps []string
	// Pages are the pages the inbox's app is on: at start it lists the
	// threads it owns there, to find again those its file lacks.
	Pages []string
	// Instagram lists the pages that are Instagram accounts: no personas
	// there, and Instagram's profile fields.
	Instagram map[string]bool
	// RefreshEvery is how often the inbox asks Baton about the
	// conversations it has (default 5s).
	RefreshEvery time.Duration
	Clock        clock.Clock
	Log          *zap.Logger
	HTTPClient   *http.Client
}

// Inbox is the web application.
type Inbox struct {
	opt   Options
	key   []byte
	db    *db
	baton *batonapi.Client
	auth  *auth
	hub   *live.Hub
	clock clock.Clock
	log   *zap.Logger

	agents map[string]*Agent
	// work asks the background loop to look at a conversation now: read
	// the person's profile, Baton's return time.
	work chan [2]string

	closeOnce sync.Once
}

// New opens the inbox's database and builds the inbox; Close closes it.
func New(opt Options) (*Inbox, error) {
	key, err := webhook.Key(opt.HookSecret)
	if err != nil {
		return nil, fmt.Errorf("inbox hook secret: %w", err)
	}
	if opt.Done == "" {
		opt.Done = DonePass
	}
	if opt.Done != DonePass && opt.Done != DoneRelease {
		return nil, fmt.Errorf("inbox: done is %q, not pass or release", opt.Done)
	}
	if u, err := url.Parse(opt.Baton); err != nil || u.Host == "" {
		return nil, fmt.Errorf("inbox: Baton URL %q is not an absolute URL", opt.Baton)
	}
	if opt.Token == "" || opt.Data == "" || len(opt.Agents) == 0 {
		return nil, errors.New("inbox: a Baton token, a data file and at least one agent are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opt.TypingHold, 2*time.Minute)
	def(&opt.ClaimHold, 5*time.Minute)
	if opt.WarnBefore < 0 {
		opt.WarnBefore = 0
	}
	if opt.Clock == nil {
		opt.Clock = clock.System{}
	}
	if opt.Log == nil {
		opt.Log = zap.NewNop()
	}
	c := opt.HTTPClient
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second}
	}
	agents := map[string]*Agent{}
	for i := range opt.Agents {
		a := opt.Agents[i]
		if a.DisplayName == "" {
			a.DisplayName = a.Name
		}
		agents[a.Name] = &a
	}
	dummy, err := dummyHash(agents)
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	d, err := openDB(opt.Data)
	if err != nil {
		return nil, err
	}
	skey, err := d.sessionKey()
	if err != nil {
		d.Close()
		return nil, err
	}
	in := &Inbox{opt: opt, key: key, db: d, clock: opt.Clock, log: opt.Log, agents: agents, hub: live.NewHub("update", maxStreams),
		baton: batonapi.New(opt.Baton, opt.Token, c),
		work:  make(chan [2]string, 256)}
	in.auth = &auth{agents: agents, dummy: dummy, proxy: opt.Proxy, key: skey, db: d, limiter: signin.New(failureWindow, opt.Clock.Now), now: in.clock.Now}
	return in, nil
}

// Close ends the live streams (so that a server can shut down) and
// closes the database. Run must have returned.
func (in *Inbox) Close() error {
	var err error
	in.closeOnce.Do(func() {
		in.hub.Close()
		err = in.db.Close()
	})
	return err
}

// CloseStreams ends the live streams only, so that a server's Shutdown
// does not wait for them.
func (in *Inbox) CloseStreams() { in.hub.Close() }

// maxStreams bounds the live streams open at once.
const maxStreams = 500

// Handler serves Baton's deliveries (POST /baton), the agents' page and
// its API.
func (in *Inbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /baton", in.receive)
	mux.HandleFunc("POST /login", in.auth.login)
	agents := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, in.auth.require(h)) }
	agents("POST /logout", in.auth.logout)
	agents("GET /api/me", in.me)
	agents("GET /api/conversations", in.listConversations)
	agents("GET /api/events", in.hub.ServeHTTP) // "update" whenever a conversation changes
	agents("GET /api/conversations/{page}/{psid}", in.getConversation)
	agents("POST /api/conversations/{page}/{psid}/{action}", in.act)
	mux.Handle("GET /", http.FileServerFS(mustSub(static, "static")))
	return secureHeaders(mux)
}

// Server serves Handler with the bounds a listener open to strangers
// needs (as Baton's own listeners have): without them a client that
// sends headers and dribbles its body holds a connection and a goroutine
// for as long as it likes. The read deadline covers the largest body
// (a delivery, maxDelivery) at 1 Mbit/s; net/http lifts it once the body
// is read, so a live stream stays open.
func (in *Inbox) Server() *http.Server {
	const honestRate = 1_000_000 / 8 // bytes a second
	return &http.Server{Handler: in.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 2*time.Second + maxDelivery*time.Second/honestRate, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
}

// secureHeaders: the page runs only its own script and style, loads
// images from https (the people's pictures, attachments), and is framed
// by nobody.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the embed pattern names dir: cannot happen
	}
	return sub
}

// ParseProxies reads trusted proxies, IPs or CIDRs.
func ParseProxies(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, s := range list {
		if ip := net.ParseIP(s); ip != nil {
			bits := 8 * len(ip.To4())
			if bits == 0 {
				bits = 128
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// Run does the inbox's background work until ctx ends: it fills the
// conversations from Baton's transcript once, renews the agents' claims,
// follows Baton's return times and reads the people's profiles.
func (in *Inbox) Run(ctx context.Context) error {
	in.rebuild(ctx)
	return in.loop(ctx)
}
