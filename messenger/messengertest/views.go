package messengertest

import (
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/graph"
	"github.com/batonhq/baton/messenger/messengertest/setup"
)

// The world as the subpackages see it (graph.Tokens, profiles.World,
// setup.World): each
// method takes w.mu itself, so a subpackage never holds the world's lock
// nor sees its types.

// HasPerson reports whether psid has a thread with the page, applying any
// expiry that is due.
func (w *world) HasPerson(pageID, psid messenger.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	pg := w.pages[pageID]
	return pg != nil && w.thread(pg, psid, false) != nil
}

// App returns the name and secret of the app with id.
func (w *world) App(id messenger.ID) (name, secret string, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.apps[id]
	if a == nil {
		return "", "", false
	}
	return a.name, a.secret, true
}

// PageToken returns the (page, app) a page access token belongs to.
func (w *world) PageToken(token string) (setup.PageApp, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pa := w.caller(token)
	if pa == nil {
		return setup.PageApp{}, false
	}
	return pa.view(), true
}

// PageApps lists the page's connected apps in app id order.
func (w *world) PageApps(pageID messenger.ID) []setup.PageApp {
	w.mu.Lock()
	defer w.mu.Unlock()
	pg := w.pages[pageID]
	if pg == nil {
		return nil
	}
	var out []setup.PageApp
	for _, pa := range pg.connectedApps() {
		out = append(out, pa.view())
	}
	return out
}

// Subscribe replaces the fields the app's webhooks for the page are sent
// for, and forgets that they were failing.
func (w *world) Subscribe(pageID, appID messenger.ID, fields []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pg := w.pages[pageID]
	if pg == nil || pg.apps[appID] == nil {
		return
	}
	pa := pg.apps[appID]
	pa.subscribed = map[string]bool{}
	for _, f := range fields {
		pa.subscribed[f] = true
	}
	pa.failingSince = time.Time{}
}

// SetCallback points the app's webhooks, and with a verify token its
// handshakes, somewhere new.
func (w *world) SetCallback(appID messenger.ID, callback, verifyToken string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.apps[appID]
	if a == nil {
		return
	}
	a.callback = callback
	if verifyToken != "" {
		a.verifyToken = verifyToken
	}
}

// view is the (page, app) as package setup sees it: Fields are every
// field it is subscribed to. Callers hold w.mu.
func (pa *pageApp) view() setup.PageApp {
	v := setup.PageApp{Page: pa.page.id, App: pa.app.id, AppName: pa.app.name}
	for f, on := range pa.subscribed {
		if on {
			v.Fields = append(v.Fields, f)
		}
	}
	return v
}

// TokenCaller returns who a page access token belongs to, and the app's
// secret.
func (w *world) TokenCaller(token string) (graph.Caller, string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pa := w.caller(token)
	if pa == nil {
		return graph.Caller{}, "", false
	}
	return graph.Caller{Page: pa.page.id, App: pa.app.id, AppName: pa.app.name, Instagram: pa.page.instagram}, pa.app.secret, true
}
