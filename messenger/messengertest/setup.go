package messengertest

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/calllog"
	"github.com/batonhq/baton/messenger/messengertest/fakeconfig"
	"github.com/batonhq/baton/messenger/messengertest/faults"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// The set-up side of the Graph API: what `baton subscribe` and `baton
// doctor` call before any message flows. Page-token calls
// (subscribed_apps, the page node's messaging_feature_status) go through
// graphAPI; the app-token calls, GET /debug_token and
// GET/POST /{app-id}/subscriptions, are served here.

// appSubscription is one object of an app's webhook configuration.
type appSubscription struct {
	callback string
	fields   []string
}

// instagramFields maps each Instagram webhook field to the Messenger
// fields the platform routes an Instagram account's events by: Instagram
// echoes come with messages, reads are messaging_seen (see
// messenger.FieldsForInstagram for Meta's pages).
var instagramFields = []struct {
	name string
	fake []string
}{
	{"messages", []string{"messages", "message_echoes"}},
	{"messaging_postbacks", []string{"messaging_postbacks"}},
	{"messaging_referral", []string{"messaging_referrals"}},
	{"messaging_handover", []string{"messaging_handovers"}},
	{"standby", []string{"standby"}},
	{"messaging_seen", []string{"message_reads"}},
	{"message_reactions", []string{"message_reactions"}},
	{"messaging_optins", []string{"messaging_optins"}},
}

// fieldNames are the webhook fields a page accepts, in Meta's names.
func (pg *page) fieldNames() []string {
	if !pg.instagram {
		return AllFields
	}
	out := make([]string, len(instagramFields))
	for i, f := range instagramFields {
		out[i] = f.name
	}
	return out
}

// fieldsShown lists the app's subscription on its page in the page's own
// field names.
func (pa *pageApp) fieldsShown() []string {
	if !pa.page.instagram {
		return pa.fieldList()
	}
	var out []string
	for _, f := range instagramFields {
		if pa.subscribed[f.fake[0]] {
			out = append(out, f.name)
		}
	}
	return out
}

// initSetup sets what the set-up calls report from the config: scopes,
// feature status and the apps' webhook configuration.
func (w *world) initSetup(cfg Config) {
	for _, pc := range cfg.Pages {
		pg := w.pages[pc.ID]
		pg.multiApp = pg.mode != ModeLegacy
		if pc.MultiApp != nil {
			pg.multiApp = *pc.MultiApp
		}
		for name, pac := range pc.Apps {
			pa := pg.apps[w.byName[name].id]
			pa.scopes = pac.Scopes
			if len(pa.scopes) == 0 {
				pa.scopes = fakeconfig.DefaultScopes(pg.platform())
			}
		}
	}
	for _, a := range w.apps {
		a.subscriptions = map[string]*appSubscription{}
		if a.callback == "" {
			continue
		}
		for _, pg := range w.pages {
			if pa := pg.apps[a.id]; pa != nil && a.subscriptions[pg.object()] == nil {
				a.subscriptions[pg.object()] = &appSubscription{callback: a.callback, fields: pa.fieldsShown()}
			}
		}
	}
}

func (pa *pageApp) hasScope(s string) bool { return slices.Contains(pa.scopes, s) }

// subscribedApps serves GET (every app subscribed to the page, with its
// fields), POST (replace the caller's fields with subscribed_fields, a
// comma list or a JSON array) and DELETE (unsubscribe the caller). Meta
// wants pages_manage_metadata for all three (REFERENCE §3.4).
func (g *graphAPI) subscribedApps(c *graphCall) (any, *messenger.Error) {
	pa := c.caller
	if !pa.hasScope("pages_manage_metadata") {
		return nil, metaerr.New(messenger.CodePermissionsError, 0, "(#200) Requires pages_manage_metadata permission to manage the object")
	}
	switch c.r.Method {
	case http.MethodGet:
		data := []messenger.SubscribedApp{}
		for _, other := range pa.page.connectedApps() {
			if len(other.subscribed) == 0 {
				continue
			}
			data = append(data, messenger.SubscribedApp{ID: other.app.id, Name: other.app.name, Category: "Business", SubscribedFields: other.fieldsShown()})
		}
		return map[string]any{"data": data}, nil
	case http.MethodPost:
		fields, gerr := parseFields(c.ps.String("subscribed_fields"), "subscribed_fields", pa.page.fieldNames())
		if gerr != nil {
			return nil, gerr
		}
		next := map[string]bool{}
		for _, f := range fields {
			for _, internal := range pa.page.routedBy(f) {
				next[internal] = true
			}
		}
		pa.subscribed = next
		pa.failingSince = time.Time{}
		return success, nil
	case http.MethodDelete:
		pa.subscribed = map[string]bool{}
		return success, nil
	}
	return nil, metaerr.Unsupported(strings.ToLower(c.r.Method), string(pa.page.id))
}

// routedBy returns the fields the platform routes by for the page's field f.
func (pg *page) routedBy(f string) []string {
	if pg.instagram {
		for _, ig := range instagramFields {
			if ig.name == f {
				return ig.fake
			}
		}
	}
	return []string{f}
}

// parseFields reads a list of webhook fields, as "a,b", "[a,b]" or
// `["a","b"]`, refusing one that is not in known.
func parseFields(raw, param string, known []string) ([]string, *messenger.Error) {
	if raw == "" {
		return nil, metaerr.ParamRequired(param)
	}
	var out []string
	for f := range strings.SplitSeq(strings.Trim(raw, "[]"), ",") {
		f = strings.Trim(strings.TrimSpace(f), `"`)
		if f == "" {
			continue
		}
		if !slices.Contains(known, f) {
			return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) Param "+param+" must be one of {"+strings.Join(known, ", ")+"} - got \""+f+"\".")
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// setupAPI serves the calls made with an app access token
// "{app-id}|{app-secret}": GET /debug_token and GET/POST
// /{app-id}/subscriptions. Like graphAPI it records every call and lets a
// fault answer instead.
type setupAPI struct {
	w      *world
	calls  *calllog.Log
	faults *faults.Injector
	// verify performs the subscription handshake with a callback, as
	// Meta does before it accepts a new callback or verify token.
	verify func(ctx context.Context, appName, callback, verifyToken string) error
}

// register adds the routes; they go before graphAPI's, whose
// /{node}/{edge} would take /{app-id}/subscriptions for a page call.
func (s *setupAPI) register(r *mux.Router) {
	const version = `{version:v[0-9]+\.[0-9]+}`
	for _, prefix := range []string{"/" + version, ""} {
		r.Handle(prefix+"/debug_token", s)
		r.Handle(prefix+"/{app:[0-9]+}/subscriptions", s)
	}
}

// secretParams are never recorded.
var secretParams = []string{"access_token", "appsecret_proof", "input_token", "verify_token"}

// ServeHTTP serves one app-token call.
func (s *setupAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	appID := messenger.ID(mux.Vars(r)["app"])
	edge := "subscriptions"
	if appID == "" {
		edge = "debug_token"
	}
	call := Call{At: s.w.now(), Method: r.Method, Path: r.URL.Path, Edge: edge, Params: map[string]string{}}
	ps, perr := messenger.ReadParams(r, maxGraphBody)
	var caller *app
	if perr == nil {
		for k := range ps {
			if !slices.Contains(secretParams, k) {
				call.Params[k] = ps.String(k)
			}
		}
		caller = s.appFor(ps.AccessToken(r))
		if caller != nil {
			call.AppID, call.App = caller.id, caller.name
		}
	}
	apply := func() (int, any) {
		var res any
		var gerr *messenger.Error
		switch {
		case perr != nil:
			gerr = metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) "+perr.Error())
		case caller == nil:
			gerr = metaerr.BadToken()
		case edge == "debug_token" && r.Method == http.MethodGet:
			res = s.debugToken(ps.String("input_token"))
		case edge == "debug_token":
			gerr = metaerr.Unsupported(strings.ToLower(r.Method), "debug_token")
		case caller.id != appID:
			// An app token reads and changes its own app only.
			gerr = metaerr.Unsupported(strings.ToLower(r.Method), string(appID))
		case r.Method == http.MethodGet:
			res = s.subscriptions(caller)
		case r.Method == http.MethodPost:
			res, gerr = s.subscribe(r.Context(), caller, ps)
		default:
			gerr = metaerr.Unsupported(strings.ToLower(r.Method), string(appID))
		}
		if gerr != nil {
			return gerr.HTTPStatus, gerr
		}
		return http.StatusOK, res
	}
	answer(w, r, s.faults, s.calls, &call, apply)
}

// appFor returns the app whose app access token "{app-id}|{app-secret}"
// this is, or nil.
func (s *setupAPI) appFor(token string) *app {
	id, secret, ok := strings.Cut(token, "|")
	if !ok || secret == "" {
		return nil
	}
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	a := s.w.apps[messenger.ID(id)]
	if a == nil || a.secret == "" || a.secret != secret {
		return nil
	}
	return a
}

// debugToken describes a token as Meta's debug_token does: for a page
// token its app, its page (profile_id) and its scopes; for anything else
// is_valid false with the reason.
func (s *setupAPI) debugToken(input string) any {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	pa := s.w.caller(input)
	if input == "" || pa == nil {
		return map[string]any{"data": map[string]any{
			"is_valid": false,
			"scopes":   []string{},
			"error":    map[string]any{"code": messenger.CodeBadToken, "message": "Invalid OAuth access token."},
		}}
	}
	return map[string]any{"data": map[string]any{
		"app_id":      pa.app.id,
		"type":        "PAGE",
		"application": pa.app.name,
		"expires_at":  0, // page tokens from a long-lived user token do not expire
		"is_valid":    true,
		"profile_id":  pa.page.id,
		"scopes":      slices.Clone(pa.scopes),
	}}
}

type subscriptionField struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// subscriptions lists the app's webhook configuration in Meta's shape.
func (s *setupAPI) subscriptions(a *app) any {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	data := []map[string]any{}
	for _, object := range []string{messenger.ObjectPage, messenger.ObjectInstagram} {
		sub := a.subscriptions[object]
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
func (s *setupAPI) subscribe(ctx context.Context, a *app, ps params) (any, *messenger.Error) {
	object, callback := ps.String("object"), ps.String("callback_url")
	var known []string
	switch object {
	case messenger.ObjectPage:
		known = AllFields
	case messenger.ObjectInstagram:
		known = (&page{instagram: true}).fieldNames()
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
	if err := s.verify(ctx, a.name, callback, ps.String("verify_token")); err != nil {
		return nil, metaerr.New(messenger.CodeCallbackVerification, 0, "(#2200) Callback verification failed with the following errors: "+err.Error())
	}
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	sub := a.subscriptions[object]
	if sub == nil {
		sub = &appSubscription{}
		a.subscriptions[object] = sub
	}
	sub.callback = callback
	for _, f := range fields {
		if !slices.Contains(sub.fields, f) {
			sub.fields = append(sub.fields, f)
		}
	}
	a.callback = callback
	if vt := ps.String("verify_token"); vt != "" {
		a.verifyToken = vt
	}
	return map[string]string{"success": "true"}, nil
}
