package graphapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
)

// proxy passes a call to Meta with the app's real page token and answers
// Meta's status and body unchanged. It reports whether Meta answered.
func (g *Endpoint) proxy(w http.ResponseWriter, r *http.Request, p *topology.Page, a *topology.App, edge string, ps messenger.Params, payload []byte) (int, []byte, bool) {
	cred, _ := p.Credentials(a)
	q := url.Values{}
	if payload == nil {
		for k := range withoutCredentials(ps) {
			q.Set(k, ps.String(k))
		}
	}
	// A call Meta may apply (a send with thread_control, a one-time
	// token used) must finish whether or not the bot still waits, so that
	// Baton records what Meta did.
	status, body, err := g.d.Graph.Raw(context.WithoutCancel(r.Context()), r.Method, cred, edge, q, payload)
	g.d.Metrics.GraphCalls.WithLabelValues("proxy_"+strings.TrimPrefix(edge, "/"), strconv.Itoa(status)).Inc()
	if err != nil {
		g.d.Errors.Record(recent.Error{Kind: "graph", App: a.Name, Page: p.ID, Message: err.Error()})
		writeError(w, errorFor("", err))
		return 0, nil, false
	}
	writeRaw(w, status, body)
	return status, body, true
}
