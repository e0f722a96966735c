package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/handover"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// RegisterBot adds the bot API under /v1 to r.
func (api *API) RegisterBot(r *mux.Router) {
	v1 := r.PathPrefix("/v1").Subrouter()
	v1.Use(api.botAuth)
	v1.Handle("/threads", api.h(api.botListThreads)).Methods(http.MethodGet)
	v1.Handle("/threads/{page}/{psid}", api.h(api.botGetThread)).Methods(http.MethodGet)
	v1.Handle("/threads/{page}/{psid}/transcript", api.h(api.botGetTranscript)).Methods(http.MethodGet)
	v1.Handle("/threads/{page}/{psid}/{op:pass|take|request|release|extend}", api.h(api.botControl)).Methods(http.MethodPost)
	v1.Handle("/threads/{page}/{psid}/activity", api.h(api.botActivity)).Methods(http.MethodPost)
}

// Holder records a human's activity on a thread, which holds its return
// rule (handover.Engine).
type Holder interface {
	Hold(ctx context.Context, a handover.Activity) (store.Thread, error)
}

// activityBody is the body of POST /v1/threads/{page}/{psid}/activity.
type activityBody struct {
	Kind  string `json:"kind"`  // typing, claimed or released
	Agent string `json:"agent"` // who, for operators
	For   string `json:"for"`   // how long it holds: a Go duration or seconds; empty: the kind's default
}

// botActivity: the owner says a human is typing, has the conversation
// claimed, or let it go; the return rule waits while it is held.
func (api *API) botActivity(w http.ResponseWriter, r *http.Request) error {
	if err := api.onPage(r); err != nil {
		return err
	}
	v := mux.Vars(r)
	if err := validPSID(v["psid"]); err != nil {
		return err
	}
	var body activityBody
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	act := handover.Activity{Page: v["page"], PSID: v["psid"], App: appFromContext(r), Kind: body.Kind, Agent: truncateRunes(body.Agent, 100)}
	if body.For != "" {
		d, err := parseDuration(body.For)
		if err != nil {
			return err
		}
		act.For = d
	}
	if api.d.Holds == nil {
		return apierr.Errorf(apierr.NotFound, "no such endpoint")
	}
	if _, err := api.d.Holds.Hold(r.Context(), act); err != nil {
		if errors.Is(err, handover.ErrBadActivity) {
			return apierr.Errorf(apierr.Invalid, "%v", err)
		}
		return err
	}
	tv, err := api.threadView(act.Page, act.PSID)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, tv)
	return nil
}

// truncateRunes cuts s to at most n runes.
func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

type appCtxKey struct{}

func appFromContext(r *http.Request) *topology.App {
	a, _ := r.Context().Value(appCtxKey{}).(*topology.App)
	return a
}

// botAuth finds the hosted app whose token_env token the request bears.
func (api *API) botAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if a := api.d.Topology.AppByToken(tok); a != nil {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), appCtxKey{}, a)))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
		api.writeError(w, r, apierr.Errorf(apierr.Unauthorized, "missing or unknown bearer token"))
	})
}

// onPage checks that the calling app is configured on the path's page: a
// bot's token reads and acts on its own pages only.
func (api *API) onPage(r *http.Request) error {
	a, page := appFromContext(r), mux.Vars(r)["page"]
	if p := api.d.Topology.Page(page); p == nil || !p.HasApp(a.ID) {
		return apierr.Errorf(apierr.Forbidden, "app %s is not configured on page %s", a.Name, page)
	}
	return nil
}

// botListThreads lists the threads of one of the app's pages, by default
// those it owns (owner=me): an inbox that lost its own database finds the
// conversations it holds again.
func (api *API) botListThreads(w http.ResponseWriter, r *http.Request) error {
	a, q := appFromContext(r), r.URL.Query()
	page := q.Get("page")
	if page == "" {
		return apierr.Errorf(apierr.Invalid, "page is required: one of the pages app %s is on", a.Name)
	}
	if p := api.d.Topology.Page(page); p == nil || !p.HasApp(a.ID) {
		return apierr.Errorf(apierr.Forbidden, "app %s is not configured on page %s", a.Name, page)
	}
	if o := q.Get("owner"); o == "" || o == "me" {
		q.Set("owner", a.Name)
	}
	return api.writeThreads(w, q)
}

func (api *API) botGetThread(w http.ResponseWriter, r *http.Request) error {
	if err := api.onPage(r); err != nil {
		return err
	}
	return api.getThread(w, r)
}

func (api *API) getThread(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	tv, err := api.threadView(v["page"], v["psid"])
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, tv)
	return nil
}

func (api *API) botControl(w http.ResponseWriter, r *http.Request) error {
	if err := api.onPage(r); err != nil {
		return err
	}
	a := appFromContext(r)
	v := mux.Vars(r)
	var body actionBody
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	req := threads.Request{Page: v["page"], PSID: v["psid"], App: a.Name, Op: statemachine.Op(v["op"]), Target: body.To,
		Metadata: body.Metadata, Cause: store.CauseCall, By: a.Name}
	if req.Op == statemachine.OpExtend {
		d, err := parseDuration(body.Duration)
		if err != nil {
			return err
		}
		req.Duration = d
	}
	if _, err := api.d.Threads.Control(r.Context(), req); err != nil {
		return err
	}
	tv, err := api.threadView(req.Page, req.PSID)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, tv)
	return nil
}
