package graphapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// control serves POST /{page}/{op}_thread_control through the
// thread-control service: the state machine's refusals come back in
// Meta's envelope before any call to Meta.
func (g *Endpoint) control(w http.ResponseWriter, r *http.Request, p *topology.Page, a *topology.App, edge string, ps messenger.Params) {
	op := statemachine.Op(strings.TrimSuffix(edge, "_thread_control")) // the allow-list let only the five through
	rcpt, ok := ps.Recipient()
	if !ok || rcpt.ID == "" {
		writeError(w, newError(http.StatusBadRequest, 100, 0, "(#100) The parameter recipient is required"))
		return
	}
	req := threads.Request{Page: p.ID, PSID: string(rcpt.ID), App: a.Name, Op: op, Metadata: ps.String("metadata"), Cause: store.CauseCall, By: a.Name}
	if tid := ps.String("target_app_id"); tid != "" && op == statemachine.OpPass {
		t := g.d.Topology.AppByID(tid)
		if t == nil || !p.HasApp(tid) {
			writeError(w, newError(http.StatusBadRequest, 100, messenger.SubcodeIncorrectAppID, "(#100) Incorrect App ID."))
			return
		}
		req.Target = t.Name
	}
	if op == statemachine.OpExtend {
		secs, err := strconv.ParseInt(ps.String("duration"), 10, 64)
		if err != nil {
			writeError(w, newError(http.StatusBadRequest, 100, 0, "(#100) Invalid parameter"))
			return
		}
		req.Duration = time.Duration(secs) * time.Second
	}
	if _, err := g.d.Threads.Control(r.Context(), req); err != nil {
		writeFailure(w, op, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}
