// Package graph is the fake platform's Graph API endpoint for page access
// tokens: /{version}/{node}/{edge} and /{node}/{edge}, with {node} "me"
// or the page id, or a person or persona. It reads a call, identifies
// its caller by the token (and appsecret_proof), lets the fault injector
// answer a call it matches, records every call, decodes the arguments
// and hands the call to the part that applies it: the thread-control
// and Send API rules (Rules), the profiles, uploads and personas
// (Media, package profiles) or subscribed_apps (Subscriptions, package
// setup). Each of those takes the world's lock as it needs it; nothing
// here holds it.
package graph

import (
	"crypto/hmac"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/calllog"
	"github.com/batonhq/baton/messenger/messengertest/control"
	"github.com/batonhq/baton/messenger/messengertest/faults"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
	"github.com/batonhq/baton/messenger/messengertest/profiles"
	"github.com/batonhq/baton/messenger/messengertest/setup"
)

// MaxBody is how much of a call's body is read, but for an upload's
// (profiles.BodyLimit).
const MaxBody = 1 << 20

// Caller is who makes a call, as its page access token tells.
type Caller struct {
	Page      messenger.ID
	App       messenger.ID
	AppName   string
	Instagram bool // the page is an Instagram professional account
}

// Tokens is what the Graph API needs of the platform's world: the time,
// and whose a page access token is.
type Tokens interface {
	Now() time.Time
	// TokenCaller returns who the page access token belongs to and the
	// secret of its app, which signs appsecret_proof; ok is false for a
	// token that is no page's.
	TokenCaller(token string) (c Caller, appSecret string, ok bool)
}

// Rules apply the calls on the page's own node and its thread-control and
// Send API edges, each answering Meta's body or a refusal.
type Rules interface {
	// ThreadControl applies a pass, take, request, release or extend.
	ThreadControl(c Caller, ctl Control) (any, *messenger.Error)
	// ThreadOwner answers GET thread_owner for the person psid.
	ThreadOwner(c Caller, psid messenger.ID) (any, *messenger.Error)
	// SecondaryReceivers answers GET secondary_receivers.
	SecondaryReceivers(c Caller) (any, *messenger.Error)
	// PageNode answers GET on the page node with the fields asked for.
	PageNode(c Caller, fields []string) (any, *messenger.Error)
	// Send applies one Send API call.
	Send(c Caller, req *messenger.SendRequest) (any, *messenger.Error)
}

// Control is one thread-control call.
type Control struct {
	Op        string // pass, take, request, release or extend
	PSID      messenger.ID
	Metadata  string
	TargetApp messenger.ID // pass: target_app_id
	Duration  string       // extend: seconds, as sent
}

// Media serves people's profiles, messenger profiles, uploads and
// personas (*profiles.Media).
type Media interface {
	Object(req profiles.Request, node string) (any, *messenger.Error)
	Edge(req profiles.Request) (any, *messenger.Error)
}

// Subscriptions serves /me/subscribed_apps (*setup.API).
type Subscriptions interface {
	SubscribedApps(req setup.Request) (any, *messenger.Error)
}

// API serves the page-token Graph calls. Create it with New.
type API struct {
	tokens       Tokens
	rules        Rules
	media        Media
	subs         Subscriptions
	answer       *Answerer
	requireProof bool
}

// New builds the endpoint over its parts; requireProof refuses a call
// without appsecret_proof (Settings.RequireAppSecretProof).
func New(tokens Tokens, rules Rules, media Media, subs Subscriptions, a *Answerer, requireProof bool) *API {
	return &API{tokens: tokens, rules: rules, media: media, subs: subs, answer: a, requireProof: requireProof}
}

// Answerer answers Graph calls, faulted or not, and records them: the
// page-token calls here and the app-token ones of package setup
// (setup.Answerer).
type Answerer struct {
	faults *faults.Injector
	calls  *calllog.Log
}

// NewAnswerer answers calls through fi and records them in calls.
func NewAnswerer(fi *faults.Injector, calls *calllog.Log) *Answerer {
	return &Answerer{faults: fi, calls: calls}
}

// Register adds the Graph routes to r, and answers any other path like
// Graph answers an unknown one.
func (g *API) Register(r *mux.Router) {
	const version = `{version:v[0-9]+\.[0-9]+}`
	const node = `{node:me|[0-9]+}`
	for _, prefix := range []string{"/" + version, ""} {
		r.Handle(prefix+"/"+node+"/{edge:[a-z_]+}", g)
		r.Handle(prefix+"/"+node, g)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		control.WriteJSON(w, http.StatusBadRequest, messenger.ErrorEnvelope{Error: metaerr.UnknownPath(r.URL.Path)})
	})
}

// Answer answers one call: as a fault that matches it says, or with what
// apply does; either way the call is recorded. apply's body is Meta's
// answer, or a *messenger.Error for a refusal, sent in Meta's envelope.
func (a *Answerer) Answer(w http.ResponseWriter, r *http.Request, call *calllog.Call, apply func() (int, any)) {
	if f, ok := a.faults.Match(call); ok {
		defer f.Done()
		a.faults.Serve(w, r, f, call, a.calls.Record, apply)
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
	a.calls.Record(*call)
	control.WriteJSON(w, status, body)
}

// ServeHTTP serves one Graph call.
func (g *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	node, edge := vars["node"], vars["edge"]
	call := calllog.Call{At: g.tokens.Now(), Method: r.Method, Path: r.URL.Path, Edge: edge}
	ps, perr := messenger.ReadParams(r, profiles.BodyLimit(r, MaxBody))
	if perr == nil {
		g.identify(r, ps, &call)
	}
	g.answer.Answer(w, r, &call, func() (int, any) {
		res, gerr := g.serve(r, ps, perr, node, edge, &call)
		if gerr != nil {
			return gerr.HTTPStatus, gerr
		}
		return http.StatusOK, res
	})
}

// identify fills in the call's arguments (never its secrets) and who makes
// it, as far as the token tells, so that a fault can match on them before
// anything is applied.
func (g *API) identify(r *http.Request, ps messenger.Params, call *calllog.Call) {
	call.Params = map[string]string{}
	for k := range ps {
		if k != "access_token" && k != "appsecret_proof" { // never record secrets
			call.Params[k] = ps.String(k)
		}
	}
	if c, _, ok := g.tokens.TokenCaller(ps.AccessToken(r)); ok {
		call.PageID, call.AppID, call.App = c.Page, c.App, c.AppName
	}
}

// serve authorizes the call and hands it to the part that applies it.
func (g *API) serve(r *http.Request, ps messenger.Params, perr error, node, edge string, call *calllog.Call) (any, *messenger.Error) {
	if perr != nil {
		return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) "+perr.Error())
	}
	c, gerr := g.authorize(r, ps, call)
	if gerr != nil {
		return nil, gerr
	}
	switch {
	case node != "me" && messenger.ID(node) != c.Page:
		return g.media.Object(mediaRequest(r, ps, c, edge), node) // a person, a persona
	case profiles.IsEdge(edge):
		return g.media.Edge(mediaRequest(r, ps, c, edge))
	case edge == "subscribed_apps":
		return g.subs.SubscribedApps(setup.Request{Method: r.Method, Params: ps, Page: c.Page, App: c.App, Instagram: c.Instagram})
	case edge == "" && r.Method == http.MethodGet:
		return g.rules.PageNode(c, fieldList(ps.String("fields")))
	case edge == "thread_owner" && r.Method == http.MethodGet:
		return g.threadOwner(c, ps)
	case edge == "secondary_receivers" && r.Method == http.MethodGet:
		return g.rules.SecondaryReceivers(c)
	case edge == "messages" && r.Method == http.MethodPost:
		return g.send(c, ps)
	case r.Method == http.MethodPost && strings.HasSuffix(edge, "_thread_control"):
		return g.threadControl(c, ps, edge)
	case edge == "" || isKnownEdge(edge):
		return nil, metaerr.Unsupported(strings.ToLower(r.Method), node)
	}
	return nil, metaerr.UnknownPath("/" + edge)
}

// authorize resolves the caller from the page access token and checks
// the appsecret_proof.
func (g *API) authorize(r *http.Request, ps messenger.Params, call *calllog.Call) (Caller, *messenger.Error) {
	token := ps.AccessToken(r)
	c, secret, ok := g.tokens.TokenCaller(token)
	if !ok {
		return Caller{}, metaerr.BadToken()
	}
	call.PageID, call.AppID, call.App = c.Page, c.App, c.AppName
	proof := ps.String("appsecret_proof")
	if proof != "" || g.requireProof {
		want := messenger.AppSecretProof(secret, token)
		if !hmac.Equal([]byte(proof), []byte(want)) {
			return Caller{}, metaerr.BadProof()
		}
	}
	return c, nil
}

func mediaRequest(r *http.Request, ps messenger.Params, c Caller, edge string) profiles.Request {
	return profiles.Request{Method: r.Method, Edge: edge, Params: ps, Page: c.Page, App: c.App, Instagram: c.Instagram}
}
