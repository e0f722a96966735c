// Package topology is Baton's configuration compiled for lookups: the apps
// (hosted or external) and the pages they share, found by name, app id or
// Baton token, and which channel Meta would use for an app on a thread.
// Every other part reads it; it changes only at start.
package topology

import (
	"crypto/subtle"
	"fmt"
	"sort"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/statemachine"
)

// App is a participant in thread control, as the config declares it.
type App struct {
	Name   string
	ID     string // Facebook app id
	Hosted bool   // Baton terminates its webhooks and holds its secrets
	// The rest is set for hosted apps only.
	Secret      []byte
	VerifyToken string
	APIToken    string // the bot's Baton token (token_env)
	Adapter     adapters.Adapter
	// AdapterType is the adapter's YAML type: "http" carries Baton's
	// envelope, and so Baton's own events; "messenger" only Meta's.
	AdapterType string
	Standby     bool // the bot wants standby copies
	MaxAttempts int
	Concurrency int
	TakeToSend  bool // send_policy.not_owner: take
	// BatchMax is the most deliveries one request to the bot carries
	// (adapter.batch.max; 0: one per request, unbatched); BatchWait is
	// how long a request that would hold fewer waits for more.
	BatchMax  int
	BatchWait time.Duration
}

// Page is a Facebook Page and the apps on it.
type Page struct {
	ID string
	// Instagram is set for an Instagram professional account: its
	// webhooks come with object "instagram" and its inbox is Instagram's.
	Instagram bool
	SM        statemachine.Page
	Primary   string            // the default app's name; empty in zero-config
	Tokens    map[string]string // app name -> page access token
	// APITokens are the Baton tokens that stand for an app on this page
	// alone (tokens.<app>.api_token_env), by app name.
	APITokens map[string]string
	Apps      []*App        // primary first, then secondaries
	Rules     *config.Rules // nil when the page has none
}

// HasApp reports whether the app with this id is on the page.
func (p *Page) HasApp(id string) bool {
	for _, a := range p.Apps {
		if a.ID == id {
			return true
		}
	}
	return false
}

// InboxAppID is the app id of Meta's own inbox on the page: the Page Inbox,
// or Instagram's inbox. Its replies, as echoes, show it took the thread.
func (p *Page) InboxAppID() messenger.ID {
	if p.Instagram {
		return messenger.InstagramInboxAppID
	}
	return messenger.PageInboxAppID
}

// CanAct reports whether Baton can make calls as a on this page: a hosted
// app with a page token.
func (p *Page) CanAct(a *App) bool { return a != nil && a.Hosted && p.Tokens[a.Name] != "" }

// Credentials of a hosted app on the page, for Graph calls.
func (p *Page) Credentials(a *App) (messenger.Credentials, bool) {
	tok, ok := p.Tokens[a.Name]
	return messenger.Credentials{PageID: messenger.ID(p.ID), AccessToken: tok, AppSecret: string(a.Secret)}, ok
}

// FirstActor is the first app on the page Baton can act as: the primary
// when Baton hosts it and holds its token.
func (p *Page) FirstActor() *App {
	for _, a := range p.Apps {
		if p.CanAct(a) {
			return a
		}
	}
	return nil
}

// ChannelFor is where Meta would send a thread's events for app a.
func (p *Page) ChannelFor(th statemachine.Thread, a *App) messenger.Channel {
	switch {
	case p.SM.Mode == statemachine.ZeroConfig,
		th.Owner == a.ID,
		th.Owner == "" && p.SM.Mode == statemachine.ConversationRouting && a.ID == p.SM.Primary:
		return messenger.ChannelMessaging
	}
	return messenger.ChannelStandby
}

// Topology is every app and page of one config.
type Topology struct {
	apps  []*App // config order
	names map[string]*App
	ids   map[string]*App
	pages map[string]*Page
	order []*Page // by id
}

// New compiles cfg; ads holds the adapter of each hosted app by name.
func New(cfg *config.Config, ads map[string]adapters.Adapter) (*Topology, error) {
	t := &Topology{names: map[string]*App{}, ids: map[string]*App{}, pages: map[string]*Page{}}
	for _, ac := range cfg.Apps {
		a := &App{Name: ac.Name, ID: ac.AppID, Hosted: ac.Hosted(), TakeToSend: ac.SendPolicy.NotOwner == "take"}
		if a.Hosted {
			a.Secret = []byte(ac.Secret.Reveal())
			a.VerifyToken = ac.VerifyToken.Reveal()
			a.APIToken = ac.APIToken.Reveal()
			a.Adapter = ads[ac.Name]
			if a.Adapter == nil {
				return nil, fmt.Errorf("app %s: no adapter built", ac.Name)
			}
			a.AdapterType = ac.Adapter.Type
			a.Standby = ac.Adapter.Standby
			a.MaxAttempts = ac.Adapter.MaxAttempts
			a.Concurrency = ac.Adapter.Concurrency
			if b := ac.Adapter.Batch; b != nil {
				a.BatchMax, a.BatchWait = b.Max, b.Wait
			}
		}
		t.apps = append(t.apps, a)
		t.names[a.Name], t.ids[a.ID] = a, a
	}
	for _, pc := range cfg.Pages {
		p := &Page{ID: pc.ID, Instagram: pc.Platform == config.PlatformInstagram, Primary: pc.Primary, Tokens: map[string]string{}, APITokens: map[string]string{}}
		p.SM = statemachine.Page{Mode: statemachine.Mode(pc.Mode), CanTake: map[string]bool{}}
		if pc.Primary != "" {
			p.SM.Primary = t.names[pc.Primary].ID
			p.Apps = append(p.Apps, t.names[pc.Primary])
		}
		for _, s := range pc.Secondary {
			p.Apps = append(p.Apps, t.names[s])
		}
		for _, name := range pc.Takeover {
			p.SM.CanTake[t.names[name].ID] = true
		}
		for name, tok := range pc.Tokens {
			p.Tokens[name] = tok.Token.Reveal()
			if api := tok.APIToken.Reveal(); api != "" {
				p.APITokens[name] = api
			}
		}
		if r := pc.Rules; len(r.Escalate)+len(r.Entry) > 0 || r.Return != nil || r.Requests != nil || r.Failover != nil || r.Hours != nil {
			p.Rules = &r
		}
		t.pages[p.ID] = p
		t.order = append(t.order, p)
	}
	sort.Slice(t.order, func(i, j int) bool { return t.order[i].ID < t.order[j].ID })
	return t, nil
}

// App returns the app of that name, or nil.
func (t *Topology) App(name string) *App { return t.names[name] }

// AppByID returns the app with that Facebook app id, or nil.
func (t *Topology) AppByID(id string) *App { return t.ids[id] }

// Apps lists every app in config order.
func (t *Topology) Apps() []*App { return t.apps }

// Page returns the page with that id, or nil.
func (t *Topology) Page(id string) *Page { return t.pages[id] }

// Pages lists every page, ordered by id.
func (t *Topology) Pages() []*Page { return t.order }

// AppByToken finds the hosted app whose Baton token this is, comparing in
// constant time.
func (t *Topology) AppByToken(tok string) *App {
	if tok == "" {
		return nil
	}
	for _, a := range t.apps {
		if a.APIToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.APIToken)) == 1 {
			return a
		}
	}
	return nil
}

// Caller finds who a /graph token stands for: an app's own Baton token
// (page nil: any of its pages), or a page's token for one app
// (tokens.<app>.api_token_env: that page only). Every token is compared,
// in constant time.
func (t *Topology) Caller(tok string) (*App, *Page) {
	if tok == "" {
		return nil, nil
	}
	var app *App
	var page *Page
	for _, a := range t.apps {
		if a.APIToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.APIToken)) == 1 {
			app = a
		}
	}
	for _, p := range t.order {
		for name, pt := range p.APITokens {
			if subtle.ConstantTimeCompare([]byte(tok), []byte(pt)) == 1 {
				app, page = t.names[name], p
			}
		}
	}
	return app, page
}

// Name names an app id for people: the YAML name, else the id; empty
// stays empty (idle).
func (t *Topology) Name(id string) string {
	if a := t.ids[id]; a != nil {
		return a.Name
	}
	return id
}
