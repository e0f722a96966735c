// Package graphapi is the Graph-compatible endpoint: a bot built on a
// Messenger SDK points its Graph origin at https://<baton>/graph and keeps
// its code. It speaks Meta's paths (with or without a version, /me or
// /{page-id}) and bodies, takes the app's Baton token where Meta takes
// tokens, runs thread control through the thread-control service, checks
// sends against what Meta would refuse (the send policy), and passes the
// rest to Meta with the real page token, answering Meta's bodies and error
// envelopes unchanged. Its errors are Meta-shaped, with their own writer.
package graphapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// Threads is what the endpoint needs of the thread-control service.
type Threads interface {
	Control(ctx context.Context, req threads.Request) (store.Thread, error)
	Current(p *topology.Page, k store.ThreadKey) (store.Thread, error)
	Reconcile(ctx context.Context, k store.ThreadKey, why string) error
	ReconcileLater(k store.ThreadKey, why string)
}

// Proxy passes a call to Meta and returns Meta's status and body
// (messenger.Client.RawBody): cred.PageID is the node, a page, a PSID or
// a persona.
type Proxy interface {
	RawBody(ctx context.Context, method string, cred messenger.Credentials, edge string, q url.Values, contentType string, payload []byte) (int, []byte, error)
}

// Deps are what the endpoint needs.
type Deps struct {
	Store    store.Store
	Topology *topology.Topology
	Threads  Threads
	Ledger   *threads.Ledger
	Graph    Proxy
	Clock    clock.Clock
	Metrics  *metrics.Set
	Errors   *recent.Errors
	// Owns, when set, says whether this replica acts for thread k now (a
	// *store.NotOwnedError when not): a send's policy and the calls it
	// makes are the thread's owner's. Nil: every thread is this process's.
	Owns func(k store.ThreadKey) error
}

// Endpoint serves /graph/.
type Endpoint struct{ d Deps }

// New builds the endpoint.
func New(d Deps) *Endpoint { return &Endpoint{d: d} }

// Register adds /graph/... to r.
func (g *Endpoint) Register(r *mux.Router) {
	sub := r.PathPrefix("/graph").Subrouter()
	for _, prefix := range []string{`/{version:v[0-9]+\.[0-9]+}`, ""} {
		sub.HandleFunc(prefix+"/{node:me|[0-9]+}/{edge:[a-z_]+}", g.serve)
		sub.HandleFunc(prefix+"/{node:me|[0-9]+}", g.serve)
	}
	sub.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newError(http.StatusBadRequest, 2500, 0, "Unknown path components: "+strings.TrimPrefix(r.URL.Path, "/graph")))
	})
}

func (g *Endpoint) serve(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	c, gerr := g.readCall(w, r)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	node, edge := v["node"], v["edge"]
	if node != "me" && g.d.Topology.Page(node) == nil {
		g.object(w, c, node, edge) // a person or a persona
		return
	}
	p, gerr := g.page(c, node)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	a, ps := c.app, c.ps
	h, gerr := allow(r.Method, edge, ps)
	switch h {
	case control:
		g.control(w, r, p, a, edge, ps)
	case send:
		g.send(w, c, p)
	case passThrough:
		q, b := c.outgoing()
		g.proxy(w, r, p, a, "", edge, q, b)
	case subscribe:
		if gerr := keepBatonFields(c, p); gerr != nil {
			writeError(w, gerr)
			return
		}
		q, b := c.outgoing()
		g.proxy(w, r, p, a, "", edge, q, b)
	default:
		g.d.Errors.Record(recent.Error{Kind: "graph", App: a.Name, Page: p.ID, Message: fmt.Sprintf("refused %s /%s: not on the allow-list", r.Method, edge)})
		writeError(w, gerr)
	}
}

func withoutCredentials(ps messenger.Params) map[string]any {
	out := make(map[string]any, len(ps))
	for k, v := range ps {
		if k != "access_token" && k != "appsecret_proof" {
			out[k] = v
		}
	}
	return out
}
