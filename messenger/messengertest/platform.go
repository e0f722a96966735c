// Package messengertest is a fake of Meta's Messenger Platform that speaks
// real HTTP: the Graph API's thread-control, thread_owner, subscription and
// Send API endpoints with Conversation Routing, zero-config and legacy
// Handover rules, and a webhook sender that routes, escapes, signs and
// retries like Meta. A control surface under /_platform/ lets tests and
// people act as a Facebook user, a Page Inbox agent, or the passage of time.
//
// It backs Baton's tests, `baton platform` and `baton demo`. Where Meta's
// behaviour is not documented, Settings chooses it.
package messengertest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
)

// PageInboxName is the name the platform gives Meta's Page Inbox app, which
// every page has unless its config says no_page_inbox.
const PageInboxName = "page-inbox"

// Windows and limits of the platform (REFERENCE §4, §5).
const (
	controlTTL        = 24 * time.Hour
	messagingWindow   = 24 * time.Hour
	humanAgentWindow  = 7 * 24 * time.Hour
	otnLifetime       = 365 * 24 * time.Hour
	maxExtendSeconds  = 7 * 24 * 3600
	maxTextLen        = 2000
	maxSendMetadata   = 1000
	maxCallsRecorded  = 10000
	maxWebhookRecords = 10000
)

// Platform is the fake Messenger Platform. Create it with New, serve
// Handler, and Close it to stop the webhook senders.
type Platform struct {
	clock    Clock
	settings Settings
	log      *zap.Logger

	mu      sync.Mutex
	apps    map[messenger.ID]*app
	byName  map[string]*app
	pages   map[messenger.ID]*page
	tokens  map[string]*pageApp
	threads map[threadKey]*thread
	otns    map[string]*otnToken
	calls   []Call
	seq     int

	hooks *webhookSender
}

type app struct {
	name        string
	id          messenger.ID
	secret      string
	verifyToken string
	callback    string
	fields      []string
}

type page struct {
	id          messenger.ID
	name        string
	mode        Mode
	defaultApp  messenger.ID // primary receiver in legacy mode
	socialRoute messenger.ID
	linkRoutes  map[string]messenger.ID
	apps        map[messenger.ID]*pageApp
}

type pageApp struct {
	page       *page
	app        *app
	token      string
	takeover   bool
	subscribed map[string]bool
	// failingSince is when the app's webhooks for this page started to
	// fail without a success since; zero when healthy.
	failingSince time.Time
}

type threadKey struct {
	page messenger.ID
	psid messenger.ID
}

type thread struct {
	page        *page
	psid        messenger.ID
	owner       messenger.ID // empty: idle
	expires     time.Time
	lastUserMsg time.Time
	messages    []ThreadMessage
}

type otnToken struct {
	page    messenger.ID
	psid    messenger.ID
	payload string
	created time.Time
	used    bool
}

// Clock is the platform's time: it moves when /_platform/clock says so.
// *clock.Manual (tests) and *clock.Offset (people) are Clocks.
type Clock interface {
	Now() time.Time
	Advance(d time.Duration) time.Time
	Set(t time.Time) time.Time
}

// Option configures a Platform.
type Option func(*Platform)

// WithClock makes the platform read time from c, so that a test can share
// one clock between the platform and the code under test.
func WithClock(c Clock) Option { return func(p *Platform) { p.clock = c } }

// WithLogger sets the platform's logger.
func WithLogger(l *zap.Logger) Option { return func(p *Platform) { p.log = l } }

// WithHTTPClient sets the client webhooks are sent with.
func WithHTTPClient(c *http.Client) Option { return func(p *Platform) { p.hooks.client = c } }

// New builds a platform from cfg.
func New(cfg Config, opts ...Option) (*Platform, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("platform config: %w", err)
	}
	settings := cfg.Settings
	settings.applyDefaults()
	p := &Platform{
		settings: settings,
		log:      zap.NewNop(),
		apps:     map[messenger.ID]*app{},
		byName:   map[string]*app{},
		pages:    map[messenger.ID]*page{},
		tokens:   map[string]*pageApp{},
		threads:  map[threadKey]*thread{},
		otns:     map[string]*otnToken{},
	}
	p.hooks = newWebhookSender(p)
	for _, o := range opts {
		o(p)
	}
	if p.clock == nil {
		// Time flows with the wall clock; a configured start shifts it.
		start := time.Now().UTC()
		if cfg.Start != "" {
			t, err := time.Parse(time.RFC3339, cfg.Start)
			if err != nil {
				return nil, fmt.Errorf("platform config: start: %w", err)
			}
			start = t
		}
		p.clock = clock.NewOffset(start)
	}
	for _, ac := range cfg.Apps {
		a := &app{name: ac.Name, id: ac.ID, secret: ac.Secret, verifyToken: ac.VerifyToken, callback: ac.CallbackURL, fields: ac.SubscribedFields}
		if len(a.fields) == 0 {
			a.fields = AllFields
		}
		p.apps[a.id], p.byName[a.name] = a, a
	}
	if p.apps[messenger.PageInboxAppID] == nil {
		inbox := &app{name: PageInboxName, id: messenger.PageInboxAppID}
		p.apps[inbox.id], p.byName[inbox.name] = inbox, inbox
	}
	for _, pc := range cfg.Pages {
		pg := &page{id: pc.ID, name: pc.Name, mode: pc.Mode, linkRoutes: map[string]messenger.ID{}, apps: map[messenger.ID]*pageApp{}}
		if pg.mode == "" {
			pg.mode = ModeConversationRouting
		}
		pg.defaultApp = p.appRef(pc.DefaultApp)
		pg.socialRoute = p.appRef(pc.SocialRoute)
		for ref, a := range pc.LinkRoutes {
			pg.linkRoutes[ref] = p.appRef(a)
		}
		for name, pac := range pc.Apps {
			a := p.byName[name]
			pa := &pageApp{page: pg, app: a, token: pac.Token, takeover: pac.Takeover, subscribed: map[string]bool{}}
			for _, f := range a.fields {
				pa.subscribed[f] = true
			}
			pg.apps[a.id] = pa
			p.tokens[pac.Token] = pa
		}
		if !pc.NoPageInbox && pg.apps[messenger.PageInboxAppID] == nil {
			// Meta's inbox answers from Meta's side: no token, no webhooks.
			pg.apps[messenger.PageInboxAppID] = &pageApp{page: pg, app: p.apps[messenger.PageInboxAppID], takeover: true, subscribed: map[string]bool{}}
		}
		p.pages[pg.id] = pg
	}
	return p, nil
}

// appRef resolves an app name or id from the config ("" stays "").
func (p *Platform) appRef(ref string) messenger.ID {
	if ref == "" {
		return ""
	}
	if a := p.byName[ref]; a != nil {
		return a.id
	}
	return messenger.ID(ref)
}

// Clock returns the platform's clock; advance it to expire control.
func (p *Platform) Clock() Clock { return p.clock }

// Close stops the webhook senders; queued webhooks are dropped.
func (p *Platform) Close() { p.hooks.close() }

func (p *Platform) now() time.Time { return p.clock.Now() }

func newID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// thread returns the thread, creating it when create is set; it applies
// any expiry that is due first. Callers hold p.mu.
func (p *Platform) thread(pg *page, psid messenger.ID, create bool) *thread {
	k := threadKey{pg.id, psid}
	t := p.threads[k]
	if t == nil {
		if !create {
			return nil
		}
		t = &thread{page: pg, psid: psid}
		if pg.mode == ModeLegacy {
			t.owner = pg.defaultApp // the primary receiver owns by default
		}
		p.threads[k] = t
	}
	p.expire(t)
	return t
}

// expire makes the thread idle once control has lapsed. Legacy pages have
// no expiry.
func (p *Platform) expire(t *thread) {
	if t.owner == "" || t.page.mode == ModeLegacy || p.now().Before(t.expires) {
		return
	}
	prev := t.owner
	t.owner = ""
	p.log.Debug("thread control expired", zap.String("page", string(t.page.id)), zap.String("psid", string(t.psid)), zap.String("app", string(prev)))
	if p.settings.ExpiryWebhook {
		ev := p.handoverEvent(t, messenger.Event{PassThreadControl: &messenger.PassThreadControl{PreviousOwnerAppID: prev, Metadata: "expired"}})
		p.deliverTo(t.page, []messenger.ID{prev}, ev, "messaging_handovers")
	}
}

// expireAll applies due expiries everywhere, after the clock moved.
func (p *Platform) expireAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.threads {
		p.expire(t)
	}
}

// grant gives the thread to owner for the standard 24 hours.
func (p *Platform) grant(t *thread, owner messenger.ID) {
	t.owner = owner
	t.expires = p.now().Add(controlTTL)
}

// Call is one Graph API request the platform received.
type Call struct {
	Seq     int               `json:"seq"`
	At      time.Time         `json:"at"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Edge    string            `json:"edge"`
	PageID  messenger.ID      `json:"page_id,omitempty"`
	AppID   messenger.ID      `json:"app_id,omitempty"`
	App     string            `json:"app,omitempty"`
	Params  map[string]string `json:"params,omitempty"`
	Status  int               `json:"status"`
	Error   *messenger.Error  `json:"error,omitempty"`
	Success bool              `json:"success"`
}

// Calls returns every Graph call received so far, oldest first.
func (p *Platform) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.calls...)
}

func (p *Platform) recordCall(c Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	c.Seq = p.seq
	if len(p.calls) >= maxCallsRecorded {
		p.calls = p.calls[1:]
	}
	p.calls = append(p.calls, c)
}

// ThreadMessage is one message in a thread, as the platform saw it.
type ThreadMessage struct {
	Mid       string       `json:"mid"`
	At        time.Time    `json:"at"`
	Direction string       `json:"direction"` // "in": from the person; "out": to the person
	AppID     messenger.ID `json:"app_id,omitempty"`
	App       string       `json:"app,omitempty"`
	Text      string       `json:"text,omitempty"`
	Payload   string       `json:"payload,omitempty"`
	Metadata  string       `json:"metadata,omitempty"`
	Tag       string       `json:"tag,omitempty"`
	HasAttach bool         `json:"has_attachment,omitempty"`
}

// ThreadState is the platform's truth about one thread.
type ThreadState struct {
	PageID            messenger.ID    `json:"page_id"`
	PSID              messenger.ID    `json:"psid"`
	OwnerAppID        *messenger.ID   `json:"owner_app_id"`
	OwnerApp          string          `json:"owner_app,omitempty"`
	ExpiresAt         *time.Time      `json:"expires_at"`
	LastUserMessageAt *time.Time      `json:"last_user_message_at"`
	Messages          []ThreadMessage `json:"messages"`
}

// Thread returns the platform's truth about a thread, with expiry applied
// as of the platform clock. ok is false for an unknown page.
func (p *Platform) Thread(pageID, psid messenger.ID) (ThreadState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pg := p.pages[pageID]
	if pg == nil {
		return ThreadState{}, false
	}
	st := ThreadState{PageID: pageID, PSID: psid, Messages: []ThreadMessage{}}
	t := p.thread(pg, psid, false)
	if t == nil {
		return st, true
	}
	if t.owner != "" {
		owner := t.owner
		st.OwnerAppID = &owner
		st.OwnerApp = p.appName(owner)
		if pg.mode != ModeLegacy {
			exp := t.expires
			st.ExpiresAt = &exp
		}
	}
	if !t.lastUserMsg.IsZero() {
		last := t.lastUserMsg
		st.LastUserMessageAt = &last
	}
	st.Messages = append(st.Messages, t.messages...)
	return st, true
}

func (p *Platform) appName(id messenger.ID) string {
	if a := p.apps[id]; a != nil {
		return a.name
	}
	return ""
}

// connectedApps returns the page's apps in a stable order (by app id), so
// webhooks go out in the same order on every run.
func (pg *page) connectedApps() []*pageApp {
	out := make([]*pageApp, 0, len(pg.apps))
	for _, pa := range pg.apps {
		out = append(out, pa)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].app.id < out[j].app.id })
	return out
}
