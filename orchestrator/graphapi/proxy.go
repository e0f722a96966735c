package graphapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
)

// proxy passes a call to Meta with the app's real page token for page p
// and answers Meta's status and body unchanged. node is what the call is
// on: "" for the page itself, else a PSID or a persona id that Baton has
// found to belong to p. It reports whether Meta answered.
func (g *Endpoint) proxy(w http.ResponseWriter, r *http.Request, p *topology.Page, a *topology.App, node, edge string, q url.Values, b *body) (int, []byte, bool) {
	status, raw, err := g.forward(r.Context(), r.Method, p, a, node, edge, q, b)
	if err != nil {
		writeError(w, errorFor("", err))
		return 0, nil, false
	}
	writeRaw(w, status, raw)
	return status, raw, true
}

// forward makes the call of proxy and returns Meta's answer, or the
// failure that kept Meta from answering (recorded in the recent errors).
func (g *Endpoint) forward(ctx context.Context, method string, p *topology.Page, a *topology.App, node, edge string, q url.Values, b *body) (int, []byte, error) {
	cred, _ := p.Credentials(a)
	op := "proxy_" + edge
	if node != "" {
		cred.PageID = messenger.ID(node)
		op = "proxy_object"
	}
	var ct string
	var payload []byte
	if b != nil {
		ct, payload = b.contentType, b.data
	}
	// A call Meta may apply (a send with thread_control, a one-time
	// token used) must finish whether or not the bot still waits, so that
	// Baton records what Meta did.
	status, raw, err := g.d.Graph.RawBody(context.WithoutCancel(ctx), method, cred, edge, q, ct, payload)
	g.d.Metrics.GraphCalls.WithLabelValues(op, strconv.Itoa(status)).Inc()
	if err != nil {
		g.d.Errors.Record(recent.Error{Kind: "graph", App: a.Name, Page: p.ID, Message: err.Error()})
	}
	return status, raw, err
}
