package messengertest

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/hooks"
)

// world is the platform's shared truth: apps, pages, tokens, threads and
// one-time notification tokens, under one mutex. Every part reads and
// changes it only with mu held; what happens to a thread (expiry, routing
// an event to the apps' webhook queues) happens here too, so that a part
// needs nothing but the world to act on a thread.
type world struct {
	clock    Clock
	settings Settings
	log      *zap.Logger
	out      webhookQueue
	// personaName names a page's persona (profiles.Media), for the
	// messages a test reads: which persona the person saw a reply from.
	personaName func(page messenger.ID, id string) string

	mu      sync.Mutex
	apps    map[messenger.ID]*app
	byName  map[string]*app
	pages   map[messenger.ID]*page
	tokens  map[string]*pageApp
	threads map[threadKey]*thread
	otns    map[string]*otnToken
}

// webhookQueue takes one event for one app; the webhook sender delivers it
// later, in the order Settings choose (package hooks).
type webhookQueue interface {
	Enqueue(q hooks.Queued)
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
	instagram   bool         // an Instagram professional account
	defaultApp  messenger.ID // primary receiver in legacy mode
	socialRoute messenger.ID
	linkRoutes  map[string]messenger.ID
	apps        map[messenger.ID]*pageApp
	multiApp    bool // what messaging_feature_status reports
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

// newWorld builds the apps and pages of a validated config. out is set by
// the caller once the webhook sender exists.
func newWorld(cfg Config, settings Settings, c Clock, log *zap.Logger) *world {
	w := &world{
		clock:    c,
		settings: settings,
		log:      log,
		apps:     map[messenger.ID]*app{},
		byName:   map[string]*app{},
		pages:    map[messenger.ID]*page{},
		tokens:   map[string]*pageApp{},
		threads:  map[threadKey]*thread{},
		otns:     map[string]*otnToken{},
	}
	for _, ac := range cfg.Apps {
		a := &app{name: ac.Name, id: ac.ID, secret: ac.Secret, verifyToken: ac.VerifyToken, callback: ac.CallbackURL, fields: ac.SubscribedFields}
		if len(a.fields) == 0 {
			a.fields = AllFields
		}
		w.apps[a.id], w.byName[a.name] = a, a
	}
	for _, inbox := range []*app{{name: PageInboxName, id: messenger.PageInboxAppID}, {name: InstagramInboxName, id: messenger.InstagramInboxAppID}} {
		if w.apps[inbox.id] == nil {
			w.apps[inbox.id], w.byName[inbox.name] = inbox, inbox
		}
	}
	for _, pc := range cfg.Pages {
		pg := &page{id: pc.ID, name: pc.Name, mode: pc.Mode, instagram: pc.Platform == PlatformInstagram, linkRoutes: map[string]messenger.ID{}, apps: map[messenger.ID]*pageApp{}}
		if pg.mode == "" {
			pg.mode = ModeConversationRouting
		}
		pg.multiApp = pg.mode != ModeLegacy
		if pc.MultiApp != nil {
			pg.multiApp = *pc.MultiApp
		}
		pg.defaultApp = w.appRef(pc.DefaultApp)
		pg.socialRoute = w.appRef(pc.SocialRoute)
		for ref, a := range pc.LinkRoutes {
			pg.linkRoutes[ref] = w.appRef(a)
		}
		for name, pac := range pc.Apps {
			a := w.byName[name]
			pa := &pageApp{page: pg, app: a, token: pac.Token, takeover: pac.Takeover, subscribed: map[string]bool{}}
			for _, f := range a.fields {
				pa.subscribed[f] = true
			}
			pg.apps[a.id] = pa
			w.tokens[pac.Token] = pa
		}
		if inbox := pg.inboxID(); !pc.NoPageInbox && pg.apps[inbox] == nil {
			// Meta's inbox answers from Meta's side: no token, no webhooks.
			pg.apps[inbox] = &pageApp{page: pg, app: w.apps[inbox], takeover: true, subscribed: map[string]bool{}}
		}
		w.pages[pg.id] = pg
	}
	return w
}

// appRef resolves an app name or id from the config ("" stays "").
func (w *world) appRef(ref string) messenger.ID {
	if ref == "" {
		return ""
	}
	if a := w.byName[ref]; a != nil {
		return a.id
	}
	return messenger.ID(ref)
}

func (w *world) now() time.Time { return w.clock.Now() }

// page returns the page with id. Callers hold w.mu.
func (w *world) page(id messenger.ID) (*page, error) {
	pg := w.pages[id]
	if pg == nil {
		return nil, fmt.Errorf("%w %s", ErrUnknownPage, id)
	}
	return pg, nil
}

// thread returns the thread, creating it when create is set; it applies
// any expiry that is due first. Callers hold w.mu.
func (w *world) thread(pg *page, psid messenger.ID, create bool) *thread {
	k := threadKey{pg.id, psid}
	t := w.threads[k]
	if t == nil {
		if !create {
			return nil
		}
		t = &thread{page: pg, psid: psid}
		if pg.mode == ModeLegacy {
			t.owner = pg.defaultApp // the primary receiver owns by default
		}
		w.threads[k] = t
	}
	w.expire(t)
	return t
}

// expire makes the thread idle once control has lapsed. Legacy pages have
// no expiry.
func (w *world) expire(t *thread) {
	if t.owner == "" || t.page.mode == ModeLegacy || w.now().Before(t.expires) {
		return
	}
	prev := t.owner
	t.owner = ""
	w.log.Debug("thread control expired", zap.String("page", string(t.page.id)), zap.String("psid", string(t.psid)), zap.String("app", string(prev)))
	if w.settings.ExpiryWebhook {
		ev := w.handoverEvent(t, messenger.Event{PassThreadControl: &messenger.PassThreadControl{PreviousOwnerAppID: prev, Metadata: "expired"}})
		w.deliverTo(t.page, []messenger.ID{prev}, ev, "messaging_handovers")
	}
}

// expireAll applies due expiries everywhere, after the clock moved.
func (w *world) expireAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.threads {
		w.expire(t)
	}
}

// advance moves the clock forward and applies the expiries that fall due.
func (w *world) advance(d time.Duration) time.Time {
	now := w.clock.Advance(d)
	w.expireAll()
	return now
}

// Now and Set are the world's clock for the control surface: Set sets it
// and applies the expiries that fall due.
func (w *world) Now() time.Time { return w.now() }

func (w *world) Set(t time.Time) {
	w.clock.Set(t)
	w.expireAll()
}

// grant gives the thread to owner for the standard 24 hours.
func (w *world) grant(t *thread, owner messenger.ID) {
	t.owner = owner
	t.expires = w.now().Add(controlTTL)
}

func (w *world) appName(id messenger.ID) string {
	if a := w.apps[id]; a != nil {
		return a.name
	}
	return ""
}

// caller returns the (page, app) a page access token belongs to, or nil.
// Callers hold w.mu.
func (w *world) caller(token string) *pageApp { return w.tokens[token] }

// HasPage and HasApp tell whether a page id, or an app name or id, is
// known; faults are checked against them so that a typo fails at once.
func (w *world) HasPage(id messenger.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pages[id] != nil
}

func (w *world) HasApp(ref string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byName[ref] != nil || w.apps[messenger.ID(ref)] != nil
}

// appID resolves an app name or id.
func (w *world) appID(ref string) (messenger.ID, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a := w.byName[ref]; a != nil {
		return a.id, true
	}
	if a := w.apps[messenger.ID(ref)]; a != nil {
		return a.id, true
	}
	return "", false
}

// callbackOf returns what the subscription handshake needs of an app.
func (w *world) callbackOf(appName string) (callback, verifyToken string, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.byName[appName]
	if a == nil || a.callback == "" {
		return "", "", false
	}
	return a.callback, a.verifyToken, true
}

// threadState is the truth about one thread, with expiry applied as of the
// clock; ok is false for an unknown page.
func (w *world) threadState(pageID, psid messenger.ID) (ThreadState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pg := w.pages[pageID]
	if pg == nil {
		return ThreadState{}, false
	}
	st := ThreadState{PageID: pageID, PSID: psid, Messages: []ThreadMessage{}}
	t := w.thread(pg, psid, false)
	if t == nil {
		return st, true
	}
	if t.owner != "" {
		owner := t.owner
		st.OwnerAppID = &owner
		st.OwnerApp = w.appName(owner)
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

// pageInfos lists the pages and their connected apps.
func (w *world) pageInfos() []PageInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []PageInfo
	for _, pg := range w.pages {
		pi := PageInfo{ID: pg.id, Name: pg.name, Mode: pg.mode, Platform: pg.platform(), DefaultApp: w.appName(pg.defaultApp)}
		for _, pa := range pg.connectedApps() {
			pi.Apps = append(pi.Apps, AppInfo{Name: pa.app.name, ID: pa.app.id, CallbackURL: pa.app.callback, Takeover: pa.takeover, SubscribedFields: pa.fieldList()})
		}
		out = append(out, pi)
	}
	return out
}

// markWebhookResult tracks how long an app's webhooks have failed and,
// past Settings.UnsubscribeAfter, unsubscribes it from the page as Meta
// does after an hour of failures. The webhook sender calls it after each
// POST.
func (w *world) markWebhookResult(batch []hooks.Queued, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	for _, q := range batch {
		pg := w.pages[q.Entry.ID]
		if pg == nil || pg.apps[q.App.ID] == nil {
			continue
		}
		pa := pg.apps[q.App.ID]
		switch {
		case ok:
			pa.failingSince = time.Time{}
		case pa.failingSince.IsZero():
			pa.failingSince = now
		case now.Sub(pa.failingSince) >= w.settings.UnsubscribeAfter && len(pa.subscribed) > 0:
			w.log.Warn("webhooks disabled: app unsubscribed from page after failing",
				zap.String("app", pa.app.name), zap.String("page", string(pa.page.id)), zap.Duration("failing_for", now.Sub(pa.failingSince)))
			pa.subscribed = map[string]bool{}
		}
	}
}

// inboxID is the app id of Meta's inbox on the page: the Page Inbox, or
// Instagram's inbox on an Instagram account.
func (pg *page) inboxID() messenger.ID {
	if pg.instagram {
		return messenger.InstagramInboxAppID
	}
	return messenger.PageInboxAppID
}

// object is the `object` of the page's webhooks.
func (pg *page) object() string {
	if pg.instagram {
		return messenger.ObjectInstagram
	}
	return messenger.ObjectPage
}

func (pg *page) platform() string {
	if pg.instagram {
		return PlatformInstagram
	}
	return PlatformMessenger
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

func (pa *pageApp) fieldList() []string {
	var out []string
	for _, f := range AllFields {
		if pa.subscribed[f] {
			out = append(out, f)
		}
	}
	return out
}
