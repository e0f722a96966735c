// Package setup is the set-up side of the fake platform's Graph API: what
// `baton subscribe` and `baton doctor` call before any message flows. It
// serves the calls made with an app access token "{app-id}|{app-secret}",
// GET /debug_token and GET/POST /{app-id}/subscriptions, and the page
// token's /me/subscribed_apps, which the Graph API (package
// messengertest) hands over. It keeps what those calls report and nothing
// else does: the tokens' scopes and the apps' webhook configurations;
// what the rest of the platform acts on (which apps get a page's
// webhooks, at which callback) it changes through World.
package setup

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/calllog"
	"github.com/batonhq/baton/messenger/messengertest/fakeconfig"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// maxBody is how much of a call's body is read, as for every Graph call
// but an upload.
const maxBody = 1 << 20 // graph.MaxBody

// World is what the set-up calls read and change of the platform's
// world. Its methods take the world's lock themselves; API calls them
// without holding its own.
type World interface {
	// Now is the platform's time.
	Now() time.Time
	// App returns the name and secret of the app with id; ok is false for
	// an unknown app.
	App(id messenger.ID) (name, secret string, ok bool)
	// PageToken returns the (page, app) a page access token belongs to;
	// ok is false when it is no page's.
	PageToken(token string) (PageApp, bool)
	// PageApps lists the apps connected to the page, in app id order.
	PageApps(page messenger.ID) []PageApp
	// Subscribe sets the fields (the platform's, in AllFields' names) the
	// app's webhooks for the page are sent for; none unsubscribes it. The
	// app's failing webhooks on the page are forgotten.
	Subscribe(page, app messenger.ID, fields []string)
	// SetCallback sends the app's webhooks to callback from now on, and
	// its handshakes with verifyToken when that is not empty.
	SetCallback(app messenger.ID, callback, verifyToken string)
}

// PageApp is an app as connected to one page.
type PageApp struct {
	Page    messenger.ID
	App     messenger.ID
	AppName string
	// Fields are those the app is subscribed to on the page, in the
	// platform's names.
	Fields []string
}

// Answerer answers a call as the Graph API does: a fault that matches the
// call answers it instead of apply; either way the call is recorded.
// apply's body is Meta's answer, or a *messenger.Error for a refusal.
type Answerer interface {
	Answer(w http.ResponseWriter, r *http.Request, call *calllog.Call, apply func() (int, any))
}

// Verifier performs the subscription handshake with a callback, as Meta
// does before it accepts a new callback or verify token.
type Verifier func(ctx context.Context, appName, callback, verifyToken string) error

type pageApp struct{ page, app messenger.ID }

// subscription is one object of an app's webhook configuration.
type subscription struct {
	callback string
	fields   []string
}

// API serves the set-up calls. Create it with New.
type API struct {
	world  World
	answer Answerer
	verify Verifier
	// scopes are what debug_token reports of each page token; set once.
	scopes map[pageApp][]string

	mu   sync.Mutex
	subs map[messenger.ID]map[string]*subscription // app id -> object -> subscription
}

var success = map[string]bool{"success": true}

// New sets what the set-up calls report from a validated config: the
// scopes of each page token (fakeconfig.DefaultScopes when it names none)
// and, for each app with a callback_url, a webhook configuration for the
// object of each kind of page it is connected to.
func New(cfg fakeconfig.Config, w World, a Answerer, verify Verifier) *API {
	s := &API{world: w, answer: a, verify: verify, scopes: map[pageApp][]string{}, subs: map[messenger.ID]map[string]*subscription{}}
	ids := map[string]messenger.ID{}
	for _, ac := range cfg.Apps {
		ids[ac.Name] = ac.ID
	}
	for _, pc := range cfg.Pages {
		platform := fakeconfig.PlatformMessenger
		if pc.Platform == fakeconfig.PlatformInstagram {
			platform = fakeconfig.PlatformInstagram
		}
		for name, pac := range pc.Apps {
			scopes := pac.Scopes
			if len(scopes) == 0 {
				scopes = fakeconfig.DefaultScopes(platform)
			}
			s.scopes[pageApp{pc.ID, ids[name]}] = scopes
		}
	}
	for _, ac := range cfg.Apps {
		s.subs[ac.ID] = map[string]*subscription{}
		if ac.CallbackURL == "" {
			continue
		}
		fields := ac.SubscribedFields
		if len(fields) == 0 {
			fields = fakeconfig.AllFields
		}
		for _, pc := range cfg.Pages {
			instagram := pc.Platform == fakeconfig.PlatformInstagram
			object := messenger.ObjectPage
			if instagram {
				object = messenger.ObjectInstagram
			}
			if _, ok := pc.Apps[ac.Name]; ok && s.subs[ac.ID][object] == nil {
				s.subs[ac.ID][object] = &subscription{callback: ac.CallbackURL, fields: shown(instagram, fields)}
			}
		}
	}
	return s
}

// Register adds the app-token routes; they go before the Graph API's,
// whose /{node}/{edge} would take /{app-id}/subscriptions for a page
// call.
func (s *API) Register(r *mux.Router) {
	const version = `{version:v[0-9]+\.[0-9]+}`
	for _, prefix := range []string{"/" + version, ""} {
		r.Handle(prefix+"/debug_token", s)
		r.Handle(prefix+"/{app:[0-9]+}/subscriptions", s)
	}
}

// secretParams are never recorded.
var secretParams = []string{"access_token", "appsecret_proof", "input_token", "verify_token"}

// caller is the app an app access token belongs to.
type caller struct {
	id   messenger.ID
	name string
}

// ServeHTTP serves one app-token call.
func (s *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	appID := messenger.ID(mux.Vars(r)["app"])
	edge := "subscriptions"
	if appID == "" {
		edge = "debug_token"
	}
	call := calllog.Call{At: s.world.Now(), Method: r.Method, Path: r.URL.Path, Edge: edge, Params: map[string]string{}}
	ps, perr := messenger.ReadParams(r, maxBody)
	var app *caller
	if perr == nil {
		for k := range ps {
			if !slices.Contains(secretParams, k) {
				call.Params[k] = ps.String(k)
			}
		}
		app = s.appFor(ps.AccessToken(r))
		if app != nil {
			call.AppID, call.App = app.id, app.name
		}
	}
	apply := func() (int, any) {
		var res any
		var gerr *messenger.Error
		switch {
		case perr != nil:
			gerr = metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) "+perr.Error())
		case app == nil:
			gerr = metaerr.BadToken()
		case edge == "debug_token" && r.Method == http.MethodGet:
			res = s.debugToken(ps.String("input_token"))
		case edge == "debug_token":
			gerr = metaerr.Unsupported(strings.ToLower(r.Method), "debug_token")
		case app.id != appID:
			// An app token reads and changes its own app only.
			gerr = metaerr.Unsupported(strings.ToLower(r.Method), string(appID))
		case r.Method == http.MethodGet:
			res = s.subscriptions(app.id)
		case r.Method == http.MethodPost:
			res, gerr = s.subscribe(r.Context(), app, ps)
		default:
			gerr = metaerr.Unsupported(strings.ToLower(r.Method), string(appID))
		}
		if gerr != nil {
			return gerr.HTTPStatus, gerr
		}
		return http.StatusOK, res
	}
	s.answer.Answer(w, r, &call, apply)
}

// appFor returns the app whose app access token "{app-id}|{app-secret}"
// this is, or nil.
func (s *API) appFor(token string) *caller {
	id, secret, ok := strings.Cut(token, "|")
	if !ok || secret == "" {
		return nil
	}
	name, want, ok := s.world.App(messenger.ID(id))
	if !ok || want == "" || want != secret {
		return nil
	}
	return &caller{id: messenger.ID(id), name: name}
}

// debugToken describes a token as Meta's debug_token does: for a page
// token its app, its page (profile_id) and its scopes; for anything else
// is_valid false with the reason.
func (s *API) debugToken(input string) any {
	pa, ok := s.world.PageToken(input)
	if input == "" || !ok {
		return map[string]any{"data": map[string]any{
			"is_valid": false,
			"scopes":   []string{},
			"error":    map[string]any{"code": messenger.CodeBadToken, "message": "Invalid OAuth access token."},
		}}
	}
	return map[string]any{"data": map[string]any{
		"app_id":      pa.App,
		"type":        "PAGE",
		"application": pa.AppName,
		"expires_at":  0, // page tokens from a long-lived user token do not expire
		"is_valid":    true,
		"profile_id":  pa.Page,
		"scopes":      slices.Clone(s.scopes[pageApp{pa.Page, pa.App}]),
	}}
}

type subscriptionField struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// subscriptions lists the app's webhook configuration in Meta's shape.
func (s *API) subscriptions(app messenger.ID) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := []map[string]any{}
	for _, object := range []string{messenger.ObjectPage, messenger.ObjectInstagram} {
		sub := s.subs[app][object]
		if sub == nil {
			continue
		}
		fields := []subscriptionField{}
		for _, f := range sub.fields {
			fields = append(fields, subscriptionField{Name: f, Version: messenger.DefaultGraphVersion})
		}
		data = append(data, map[string]any{"object": object, "callback_url": sub.callback, "active": true, "fields": fields})
	}
	return map[string]any{"data": data}
}

// subscribe sets the app's webhook configuration for one object after the
// handshake with the callback succeeded; the fields given are added to
// those already there (whether Meta's POST adds or replaces is not
// documented; Baton sends every field it wants either way). The app's
// webhooks then go to the new callback.
func (s *API) subscribe(ctx context.Context, app *caller, ps messenger.Params) (any, *messenger.Error) {
	object, callback := ps.String("object"), ps.String("callback_url")
	var known []string
	switch object {
	case messenger.ObjectPage:
		known = fieldNames(false)
	case messenger.ObjectInstagram:
		known = fieldNames(true)
	case "":
		return nil, metaerr.ParamRequired("object")
	default:
		return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) Param object must be one of {page, instagram} - got \""+object+"\".")
	}
	if callback == "" {
		return nil, metaerr.ParamRequired("callback_url")
	}
	fields, gerr := parseFields(ps.String("fields"), "fields", known)
	if gerr != nil {
		return nil, gerr
	}
	verifyToken := ps.String("verify_token")
	if err := s.verify(ctx, app.name, callback, verifyToken); err != nil {
		return nil, metaerr.New(messenger.CodeCallbackVerification, 0, "(#2200) Callback verification failed with the following errors: "+err.Error())
	}
	s.mu.Lock()
	sub := s.subs[app.id][object]
	if sub == nil {
		sub = &subscription{}
		if s.subs[app.id] == nil {
			s.subs[app.id] = map[string]*subscription{}
		}
		s.subs[app.id][object] = sub
	}
	sub.callback = callback
	for _, f := range fields {
		if !slices.Contains(sub.fields, f) {
			sub.fields = append(sub.fields, f)
		}
	}
	s.mu.Unlock() // before the world's lock, which is never taken inside s.mu
	s.world.SetCallback(app.id, callback, verifyToken)
	return map[string]string{"success": "true"}, nil
}
