package messengertest

import (
	"crypto/hmac"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/calllog"
	"github.com/batonhq/baton/messenger/messengertest/faults"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
	"github.com/batonhq/baton/messenger/messengertest/profiles"
	"github.com/batonhq/baton/messenger/messengertest/setup"
)

const maxGraphBody = 1 << 20

type params = messenger.Params

// graphCall is one decoded Graph request.
type graphCall struct {
	r      *http.Request
	ps     params
	caller *pageApp
	edge   string
}

// graphAPI serves the Graph API: /{version}/{node}/{edge} and
// /{node}/{edge}, with {node} "me" or the page id. It resolves the caller
// from the page access token, lets the fault injector answer a call it
// matches, and otherwise applies the rules, or hands the call to the
// profiles (people, messenger profiles, uploads, personas) or the set-up
// calls (subscribed_apps); every call is recorded.
type graphAPI struct {
	w        *world
	rules    *rules
	calls    *calllog.Log
	faults   *faults.Injector
	profiles *profiles.Media
	setup    *setup.API
}

// register adds the Graph routes to r, and answers any other path like
// Graph answers an unknown one.
func (g *graphAPI) register(r *mux.Router) {
	const version = `{version:v[0-9]+\.[0-9]+}`
	const node = `{node:me|[0-9]+}`
	for _, prefix := range []string{"/" + version, ""} {
		r.Handle(prefix+"/"+node+"/{edge:[a-z_]+}", g)
		r.Handle(prefix+"/"+node, g)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusBadRequest, messenger.ErrorEnvelope{Error: metaerr.UnknownPath(r.URL.Path)})
	})
}

// ServeHTTP serves one Graph call.
func (g *graphAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	node, edge := vars["node"], vars["edge"]
	call := Call{At: g.w.now(), Method: r.Method, Path: r.URL.Path, Edge: edge}
	ps, perr := messenger.ReadParams(r, profiles.BodyLimit(r, maxGraphBody))
	if perr == nil {
		g.identify(r, ps, &call)
	}
	g.Answer(w, r, &call, func() (int, any) { return g.serve(r, ps, perr, node, edge, &call) })
}

// Answer answers one call: as a fault that matches it says, or with what
// apply does; either way the call is recorded. apply's body is Meta's
// answer, or a *messenger.Error for a refusal, sent in Meta's envelope.
// The set-up calls answer through it too (setup.Answerer).
func (g *graphAPI) Answer(w http.ResponseWriter, r *http.Request, call *Call, apply func() (int, any)) {
	calls, fi := g.calls, g.faults
	if f, ok := fi.Match(call); ok {
		defer f.Done()
		fi.Serve(w, r, f, call, calls.Record, apply)
		return
	}
	status, body := apply()
	call.Status = status
	if ge, ok := body.(*messenger.Error); ok {
		call.Error = ge
		body = messenger.ErrorEnvelope{Error: ge}
	} else {
		call.Success = true
	}
	calls.Record(*call)
	writeJSON(w, status, body)
}

// identify fills in the call's arguments (never its secrets) and who makes
// it, as far as the token tells, so that a fault can match on them before
// anything is applied.
func (g *graphAPI) identify(r *http.Request, ps params, call *Call) {
	call.Params = map[string]string{}
	for k := range ps {
		if k != "access_token" && k != "appsecret_proof" { // never record secrets
			call.Params[k] = ps.String(k)
		}
	}
	g.w.mu.Lock()
	defer g.w.mu.Unlock()
	if caller := g.w.caller(ps.AccessToken(r)); caller != nil {
		call.PageID, call.AppID, call.App = caller.page.id, caller.app.id, caller.app.name
	}
}

// serve applies one call and returns Meta's answer: a body, or a
// *messenger.Error for a refusal.
func (g *graphAPI) serve(r *http.Request, ps params, perr error, node, edge string, call *Call) (int, any) {
	res, gerr := g.apply(r, ps, perr, node, edge, call)
	if gerr != nil {
		return gerr.HTTPStatus, gerr
	}
	return http.StatusOK, res
}

// apply authorizes the call and dispatches it: to a subpackage, which
// takes the world's lock as it needs it, or to the rules under the lock.
func (g *graphAPI) apply(r *http.Request, ps params, perr error, node, edge string, call *Call) (any, *messenger.Error) {
	if perr != nil {
		return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) "+perr.Error())
	}
	caller, gerr := g.authorize(r, ps, call)
	if gerr != nil {
		return nil, gerr
	}
	pg := caller.page // its id and platform never change
	switch {
	case node != "me" && messenger.ID(node) != pg.id:
		return g.profiles.Object(g.profileRequest(r, ps, caller, edge), node) // a person, a persona
	case profiles.IsEdge(edge):
		return g.profiles.Edge(g.profileRequest(r, ps, caller, edge))
	case edge == "subscribed_apps":
		return g.setup.SubscribedApps(setup.Request{Method: r.Method, Params: ps, Page: pg.id, App: caller.app.id, Instagram: pg.instagram})
	}
	g.w.mu.Lock()
	defer g.w.mu.Unlock()
	return g.pageCall(&graphCall{r: r, ps: ps, caller: caller, edge: edge}, node)
}

// authorize resolves the caller from the page access token and checks
// the appsecret_proof.
func (g *graphAPI) authorize(r *http.Request, ps params, call *Call) (*pageApp, *messenger.Error) {
	token := ps.AccessToken(r)
	g.w.mu.Lock()
	defer g.w.mu.Unlock()
	caller := g.w.caller(token)
	if caller == nil {
		return nil, metaerr.BadToken()
	}
	call.PageID, call.AppID, call.App = caller.page.id, caller.app.id, caller.app.name
	proof := ps.String("appsecret_proof")
	if proof != "" || g.w.settings.RequireAppSecretProof {
		want := messenger.AppSecretProof(caller.app.secret, token)
		if !hmac.Equal([]byte(proof), []byte(want)) {
			return nil, metaerr.BadProof()
		}
	}
	return caller, nil
}

func (g *graphAPI) profileRequest(r *http.Request, ps params, caller *pageApp, edge string) profiles.Request {
	return profiles.Request{Method: r.Method, Edge: edge, Params: ps, Page: caller.page.id, App: caller.app.id, Instagram: caller.page.instagram}
}

// pageCall serves the page's own node and its thread-control and Send API
// edges. Callers hold w.mu.
func (g *graphAPI) pageCall(c *graphCall, node string) (any, *messenger.Error) {
	r, edge := c.r, c.edge
	switch {
	case edge == "" && r.Method == http.MethodGet:
		return g.node(c)
	case edge == "thread_owner" && r.Method == http.MethodGet:
		return g.threadOwner(c)
	case edge == "secondary_receivers" && r.Method == http.MethodGet:
		return g.secondaryReceivers(c)
	case edge == "messages" && r.Method == http.MethodPost:
		return g.sendAPI(c)
	case r.Method == http.MethodPost && strings.HasSuffix(edge, "_thread_control"):
		return g.threadControl(c)
	case edge == "" || isKnownEdge(edge):
		return nil, metaerr.Unsupported(strings.ToLower(r.Method), node)
	default:
		return nil, metaerr.UnknownPath("/" + edge)
	}
}

func isKnownEdge(e string) bool {
	switch e {
	case "thread_owner", "secondary_receivers", "subscribed_apps", "messages",
		"pass_thread_control", "take_thread_control", "request_thread_control", "release_thread_control", "extend_thread_control":
		return true
	}
	return false
}

var success = map[string]bool{"success": true}

func (g *graphAPI) callThread(c *graphCall) (*thread, *messenger.Error) {
	rcpt, ok := c.ps.Recipient()
	if !ok || rcpt.ID == "" {
		return nil, metaerr.ParamRequired("recipient")
	}
	t := g.w.thread(c.caller.page, rcpt.ID, false)
	if t == nil {
		return nil, metaerr.NoUser()
	}
	return t, nil
}

func (g *graphAPI) threadControl(c *graphCall) (any, *messenger.Error) {
	switch c.edge {
	case "pass_thread_control", "take_thread_control", "request_thread_control", "release_thread_control", "extend_thread_control":
	default:
		return nil, metaerr.UnknownPath("/" + c.edge)
	}
	t, err := g.callThread(c)
	if err != nil {
		return nil, err
	}
	md := c.ps.String("metadata")
	switch c.edge {
	case "pass_thread_control":
		return success, g.rules.pass(c.caller, t, messenger.ID(c.ps.String("target_app_id")), md)
	case "take_thread_control":
		err, ok := g.rules.take(c.caller, t, md)
		if ok && g.w.settings.TakeSuccessBody == "thread_owner" {
			return map[string]any{"data": []any{map[string]any{"thread_owner": map[string]any{
				"app_id": t.owner, "expiration": t.expires.Unix(),
			}}}}, nil
		}
		return success, err
	case "request_thread_control":
		return success, g.rules.request(c.caller, t, md)
	case "release_thread_control":
		return success, g.rules.release(c.caller, t, md)
	default:
		secs, perr := strconv.ParseInt(c.ps.String("duration"), 10, 64)
		if perr != nil {
			return nil, metaerr.InvalidParameter()
		}
		return success, g.rules.extend(c.caller, t, secs)
	}
}

func (g *graphAPI) threadOwner(c *graphCall) (any, *messenger.Error) {
	psid := c.ps.String("recipient")
	if psid == "" {
		return nil, metaerr.ParamRequired("recipient")
	}
	if rcpt, ok := c.ps.Recipient(); ok && rcpt.ID != "" {
		psid = string(rcpt.ID) // tolerate the object form too
	}
	t := g.w.thread(c.caller.page, messenger.ID(psid), false)
	if t == nil {
		t = &thread{page: c.caller.page, psid: messenger.ID(psid)} // never wrote: idle
		if t.page.mode == ModeLegacy {
			t.owner = t.page.defaultApp
		}
	}
	return g.rules.threadOwnerView(c.caller, t)
}

func (g *graphAPI) secondaryReceivers(c *graphCall) (any, *messenger.Error) {
	pg := c.caller.page
	if pg.mode != ModeLegacy || !isPrimary(pg, c.caller.app.id) {
		return nil, metaerr.NotReceiver()
	}
	data := []messenger.AppInfo{}
	for _, pa := range pg.connectedApps() {
		if !isPrimary(pg, pa.app.id) {
			data = append(data, messenger.AppInfo{ID: pa.app.id, Name: pa.app.name})
		}
	}
	return map[string]any{"data": data}, nil
}

func (g *graphAPI) node(c *graphCall) (any, *messenger.Error) {
	pg := c.caller.page
	res := map[string]any{"id": pg.id}
	for f := range strings.SplitSeq(c.ps.String("fields"), ",") {
		switch strings.TrimSpace(f) {
		case "messaging_feature_status":
			cr := pg.multiApp
			res["messaging_feature_status"] = messenger.FeatureStatus{MsgrMultiApp: cr && !pg.instagram, IGMultiApp: cr && pg.instagram}
		case "name":
			res["name"] = pg.name
		}
	}
	return res, nil
}

func (g *graphAPI) sendAPI(c *graphCall) (any, *messenger.Error) {
	var req messenger.SendRequest
	raw, _ := json.Marshal(map[string]any(c.ps))
	if err := json.Unmarshal(raw, &req); err != nil {
		// Query and form callers send objects as JSON text.
		req = messenger.SendRequest{}
		if json.Unmarshal([]byte(c.ps.String("message")), &req.Message) != nil && c.ps.String("message") != "" {
			return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) param message must be a JSON object")
		}
		req.MessagingType, req.Tag, req.SenderAction, req.PersonaID = c.ps.String("messaging_type"), c.ps.String("tag"), c.ps.String("sender_action"), c.ps.String("persona_id")
		if tc := c.ps.String("thread_control"); tc != "" {
			req.ThreadControl = &messenger.ThreadControl{}
			_ = json.Unmarshal([]byte(tc), req.ThreadControl)
		}
	}
	rcpt, ok := c.ps.Recipient()
	if !ok {
		return nil, metaerr.ParamRequired("recipient")
	}
	req.Recipient = rcpt
	return g.rules.send(c.caller, &req)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
