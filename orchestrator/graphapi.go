package orchestrator

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// The Graph-compatible endpoint: a bot built on a Messenger SDK points its
// Graph origin at https://<baton>/graph and keeps its code. It speaks
// Meta's paths (with or without a version, /me or /{page-id}) and bodies,
// takes the app's Baton token where Meta takes tokens, runs thread control
// through the thread-control service, checks sends against what Meta
// would refuse, and passes the rest to Meta with the real page token,
// answering Meta's bodies and error envelopes unchanged.

const maxGraphBody = 1 << 20

func (o *Orchestrator) graphRoutes(r *mux.Router) {
	g := r.PathPrefix("/graph").Subrouter()
	for _, prefix := range []string{`/{version:v[0-9]+\.[0-9]+}`, ""} {
		g.HandleFunc(prefix+"/{node:me|[0-9]+}/{edge:[a-z_]+}", o.graphCall)
		g.HandleFunc(prefix+"/{node:me|[0-9]+}", o.graphCall)
	}
	g.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeGraphError(w, graphErr(http.StatusBadRequest, 2500, 0, "Unknown path components: "+strings.TrimPrefix(r.URL.Path, "/graph")))
	})
}

// graphErr is an error in Meta's envelope made by Baton.
func graphErr(status, code, subcode int, msg string) *messenger.Error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &messenger.Error{HTTPStatus: status, Message: msg, Type: "OAuthException", Code: code, Subcode: subcode,
		FBTraceID: "baton_" + base64.RawURLEncoding.EncodeToString(b)}
}

func writeGraphError(w http.ResponseWriter, e *messenger.Error) {
	writeJSON(w, e.HTTPStatus, messenger.ErrorEnvelope{Error: e})
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (o *Orchestrator) graphCall(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	ps, err := messenger.ReadParams(r, maxGraphBody)
	if err != nil {
		writeGraphError(w, graphErr(http.StatusBadRequest, 100, 0, "(#100) "+err.Error()))
		return
	}
	a := o.appByToken(ps.AccessToken(r))
	if a == nil {
		writeGraphError(w, graphErr(http.StatusBadRequest, messenger.CodeBadToken, 0, "Invalid OAuth access token."))
		return
	}
	p, gerr := o.graphPage(a, v["node"])
	if gerr != nil {
		writeGraphError(w, gerr)
		return
	}
	edge := v["edge"]
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(edge, "_thread_control"):
		o.graphControl(w, r, p, a, edge, ps)
	case r.Method == http.MethodPost && edge == "messages":
		o.graphSend(w, r, p, a, ps)
	case r.Method == http.MethodGet && (edge == "" || edge == "thread_owner" || edge == "secondary_receivers" || edge == "subscribed_apps"),
		r.Method == http.MethodPost && edge == "subscribed_apps":
		o.graphProxy(w, r, p, a, edge, ps, nil)
	default:
		writeGraphError(w, graphErr(http.StatusBadRequest, 100, 33, fmt.Sprintf("Unsupported %s request on %s.", strings.ToLower(r.Method), edge)))
	}
}

// appByToken finds the hosted app whose Baton token (token_env) this is.
func (o *Orchestrator) appByToken(tok string) *app {
	if tok == "" {
		return nil
	}
	for _, a := range o.apps {
		if a.apiToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.apiToken)) == 1 {
			return a
		}
	}
	return nil
}

// graphPage resolves the node: a page id, or "me", the one page the app
// has a token for.
func (o *Orchestrator) graphPage(a *app, node string) (*page, *messenger.Error) {
	if node != "me" {
		p := o.pages[node]
		if p == nil || p.tokens[a.name] == "" {
			return nil, graphErr(http.StatusBadRequest, 100, 33, fmt.Sprintf("Unsupported request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", node))
		}
		return p, nil
	}
	var found *page
	for _, p := range o.pages {
		if p.tokens[a.name] != "" {
			if found != nil {
				return nil, graphErr(http.StatusBadRequest, 100, 0, "(#100) This app is on several pages in Baton: call /{page-id}/... instead of /me/...")
			}
			found = p
		}
	}
	if found == nil {
		return nil, graphErr(http.StatusBadRequest, 100, 0, "(#100) This app has no page token in Baton's config")
	}
	return found, nil
}

func (o *Orchestrator) graphControl(w http.ResponseWriter, r *http.Request, p *page, a *app, edge string, ps messenger.Params) {
	op := statemachine.Op(strings.TrimSuffix(edge, "_thread_control"))
	switch op {
	case statemachine.OpPass, statemachine.OpTake, statemachine.OpRequest, statemachine.OpRelease, statemachine.OpExtend:
	default:
		writeGraphError(w, graphErr(http.StatusBadRequest, 2500, 0, "Unknown path components: /"+edge))
		return
	}
	rcpt, ok := ps.Recipient()
	if !ok || rcpt.ID == "" {
		writeGraphError(w, graphErr(http.StatusBadRequest, 100, 0, "(#100) The parameter recipient is required"))
		return
	}
	req := controlRequest{Page: p.id, PSID: string(rcpt.ID), App: a.name, Op: op, Metadata: ps.String("metadata"), Cause: store.CauseCall, By: a.name}
	if tid := ps.String("target_app_id"); tid != "" && op == statemachine.OpPass {
		t := o.appsByID[tid]
		if t == nil || !p.hasApp(tid) {
			writeGraphError(w, graphErr(http.StatusBadRequest, 100, messenger.SubcodeIncorrectAppID, "(#100) Incorrect App ID."))
			return
		}
		req.Target = t.name
	}
	if op == statemachine.OpExtend {
		secs, err := strconv.ParseInt(ps.String("duration"), 10, 64)
		if err != nil {
			writeGraphError(w, graphErr(http.StatusBadRequest, 100, 0, "(#100) Invalid parameter"))
			return
		}
		req.Duration = time.Duration(secs) * time.Second
	}
	if _, err := o.control(r.Context(), req); err != nil {
		writeGraphError(w, o.graphErrorFor(op, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// graphErrorFor answers a refused or failed call as Meta would: Meta's own
// errors unchanged, the state machine's refusals with the codes Meta uses
// for them (REFERENCE §1.4).
func (o *Orchestrator) graphErrorFor(op statemachine.Op, err error) *messenger.Error {
	var ge *messenger.Error
	var ae *apiError
	bad := http.StatusBadRequest
	switch {
	case errors.As(err, &ge):
		return ge
	case errors.Is(err, statemachine.ErrNotOwner):
		switch op {
		case statemachine.OpRelease:
			return graphErr(bad, 100, 0, "(#100) Only the current thread owner can release")
		case statemachine.OpExtend:
			return graphErr(bad, 100, 0, "(#100) Only the current thread owner can extend")
		}
		return graphErr(bad, 100, 0, "(#100) calling app is not the thread owner")
	case errors.Is(err, statemachine.ErrTakeNotPermitted), errors.Is(err, statemachine.ErrNotPrimary):
		return graphErr(bad, messenger.CodePermissionsError, 0, "(#200) Permissions error")
	case errors.Is(err, statemachine.ErrNotInMode) && op == statemachine.OpTake:
		return graphErr(bad, messenger.CodeUnsupported, 0, "(#27) not supported when Conversation Routing is not enabled")
	case errors.Is(err, statemachine.ErrNotInMode):
		return graphErr(bad, messenger.CodeUnsupported, 0, "(#27) not supported when Conversation Routing is enabled")
	case errors.Is(err, statemachine.ErrTargetRequired):
		return graphErr(bad, 100, 0, "(#100) The parameter target_app_id is required")
	case isRefusal(err):
		return graphErr(bad, 100, 0, "(#100) Invalid parameter")
	case errors.As(err, &ae):
		return graphErr(bad, 100, 0, "(#100) "+ae.msg)
	}
	e := graphErr(http.StatusServiceUnavailable, messenger.CodeService, 0, "Service temporarily unavailable")
	e.IsTransient = true
	return e
}

// graphSend checks a send against what Meta would refuse, then forwards it
// to Meta with the real page token.
func (o *Orchestrator) graphSend(w http.ResponseWriter, r *http.Request, p *page, a *app, ps messenger.Params) {
	var req messenger.SendRequest
	raw, _ := json.Marshal(withoutCredentials(ps))
	_ = json.Unmarshal(raw, &req) // query/form callers send objects as JSON text: parsed below
	if req.Message == nil && ps.String("message") != "" {
		_ = json.Unmarshal([]byte(ps.String("message")), &req.Message)
	}
	if req.Tag == "" {
		req.Tag = ps.String("tag")
	}
	rcpt, ok := ps.Recipient()
	if !ok {
		writeGraphError(w, graphErr(http.StatusBadRequest, 100, 0, "(#100) The parameter recipient is required"))
		return
	}
	var otn *store.OneTimeToken
	if req.Message != nil && (rcpt.ID != "" || rcpt.OneTimeNotifToken != "") {
		var gerr *messenger.Error
		otn, gerr = o.sendPolicy(r.Context(), p, a, rcpt, req.Tag)
		if gerr != nil {
			o.metrics.sendRefusals.WithLabelValues(a.name, strconv.Itoa(gerr.Code)+"/"+strconv.Itoa(gerr.Subcode)).Inc()
			o.recordError(RecentError{Kind: "send_policy", App: a.name, Page: p.id, PSID: string(rcpt.ID), Message: gerr.Message})
			writeGraphError(w, gerr)
			return
		}
	}
	status, _, ok2 := o.graphProxy(w, r, p, a, "messages", ps, raw)
	if ok2 && status == http.StatusOK && otn != nil {
		otn.UsedAt = o.clock.Now()
		if err := o.store.Update(context.Background(), func(tx store.Tx) error { return tx.PutOneTimeToken(*otn) }); err != nil {
			o.recordError(RecentError{Kind: "send_policy", App: a.name, Page: p.id, Message: "one-time token used but not recorded: " + err.Error()})
		}
	}
	if !ok2 || status != http.StatusOK || req.ThreadControl == nil || rcpt.ID == "" {
		return
	}
	// Meta sends no webhook for a release by send: record it ourselves.
	owner := ""
	if req.ThreadControl.ControlType == "pass" {
		owner = string(req.ThreadControl.AppID)
		if owner == "" {
			owner = p.sm.Primary
		}
	}
	o.recordObserved(r.Context(), p, store.ThreadKey{Page: p.id, PSID: string(rcpt.ID)}, owner, "send_thread_control", a.name)
}

// sendPolicy refuses, with Meta's error, what Meta would refuse: another
// app owns the thread (10/2018300; or take control first, if the app's
// send_policy says so and the page allows), the messaging window is
// closed (10/2018278; HUMAN_AGENT allows 7 days), a retired tag (100), a
// one-time notification token used before or older than a year (100). It
// returns the token to mark used once the send succeeds.
func (o *Orchestrator) sendPolicy(ctx context.Context, p *page, a *app, rcpt messenger.Recipient, tag string) (*store.OneTimeToken, *messenger.Error) {
	now := o.clock.Now()
	bad := http.StatusBadRequest
	if messenger.IsRetiredTag(tag, now) {
		return nil, graphErr(bad, 100, 0, "(#100) Invalid parameter")
	}
	psid := string(rcpt.ID)
	var otn *store.OneTimeToken
	if tok := rcpt.OneTimeNotifToken; tok != "" {
		var t store.OneTimeToken
		err := o.store.View(func(tx store.ReadTx) error {
			var err error
			t, err = tx.OneTimeToken(tok)
			return err
		})
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, nil // granted before Baton saw it: Meta decides
		case err != nil:
			return nil, nil
		case t.Page != p.id || !t.UsedAt.IsZero() || now.Sub(t.Created) > 365*24*time.Hour:
			return nil, graphErr(bad, 100, 0, "(#100) Invalid one_time_notif_token")
		}
		otn, psid = &t, t.PSID
	}
	if psid == "" {
		return nil, nil
	}
	th, err := o.readThread(p, psid)
	if err != nil {
		return nil, nil // cannot judge: let Meta decide
	}
	if statemachine.Expired(p.sm, th.Thread, now) {
		th.Owner = ""
	}
	if o.notOwner(p, a, th.Owner) {
		if !a.takeToSend || !p.sm.CanTake[a.id] || p.sm.Mode != statemachine.ConversationRouting {
			return nil, graphErr(bad, messenger.CodePermission, messenger.SubcodeNotOwner, "(#10) Message failed to send because another app is controlling this thread now.")
		}
		if _, err := o.control(ctx, controlRequest{Page: p.id, PSID: psid, App: a.name, Op: statemachine.OpTake,
			Metadata: "send_policy", Cause: store.CauseCall, By: a.name}); err != nil {
			return nil, o.graphErrorFor(statemachine.OpTake, err)
		}
	}
	if otn != nil || th.LastUserMessageAt.IsZero() {
		return otn, nil // a one-time token opens its own window; unseen person: Meta knows better
	}
	since := now.Sub(th.LastUserMessageAt)
	if since <= 24*time.Hour || (tag == messenger.TagHumanAgent && since <= 7*24*time.Hour) {
		return nil, nil
	}
	return nil, graphErr(bad, messenger.CodePermission, messenger.SubcodeOutsideWindow,
		"(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview")
}

func (o *Orchestrator) readThread(p *page, psid string) (store.Thread, error) {
	var th store.Thread
	err := o.store.View(func(tx store.ReadTx) error {
		var err error
		th, err = o.loadThread(tx, p, store.ThreadKey{Page: p.id, PSID: psid})
		return err
	})
	return th, err
}

// notOwner reports whether Meta would refuse a's send for the owner.
func (o *Orchestrator) notOwner(p *page, a *app, owner string) bool {
	switch p.sm.Mode {
	case statemachine.ConversationRouting:
		return (owner != "" && owner != a.id) || (owner == "" && a.id != p.sm.Primary)
	case statemachine.ZeroConfig:
		return owner != "" && owner != a.id
	}
	return false // legacy: either app may respond
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

// graphProxy passes a call to Meta with the app's real page token and
// answers Meta's status and body unchanged.
func (o *Orchestrator) graphProxy(w http.ResponseWriter, r *http.Request, p *page, a *app, edge string, ps messenger.Params, payload []byte) (int, []byte, bool) {
	cred, _ := o.credentials(p, a)
	q := url.Values{}
	if payload == nil {
		for k := range withoutCredentials(ps) {
			q.Set(k, ps.String(k))
		}
	}
	status, body, err := o.graph.Raw(r.Context(), r.Method, cred, edge, q, payload)
	o.metrics.graphCalls.WithLabelValues("proxy_"+strings.TrimPrefix(edge, "/"), strconv.Itoa(status)).Inc()
	if err != nil {
		o.recordError(RecentError{Kind: "graph", App: a.name, Page: p.id, Message: err.Error()})
		writeGraphError(w, o.graphErrorFor("", err))
		return 0, nil, false
	}
	writeRaw(w, status, body)
	return status, body, true
}

// recordObserved records an owner Baton learned from its own successful
// call when Meta sends no webhook for it.
func (o *Orchestrator) recordObserved(ctx context.Context, p *page, k store.ThreadKey, owner, event, by string) {
	err := o.store.Update(ctx, func(tx store.Tx) error {
		th, err := o.loadThread(tx, p, k)
		if err != nil {
			return err
		}
		before := th.Version
		now := o.clock.Now()
		if err := o.apply(tx, p, &th, statemachine.Input{Op: statemachine.OpObserve, Target: owner, At: now},
			store.HistoryEntry{Event: event, By: by, Cause: store.CauseCall}); err != nil {
			return err
		}
		if th.Version == before {
			return nil
		}
		th.UpdatedAt = now
		return tx.PutThread(th)
	})
	if err != nil {
		o.recordError(RecentError{Kind: "graph", Page: k.Page, PSID: k.PSID, Message: "record send thread_control: " + err.Error()})
	}
}
