package orchestrator

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// handlerFunc is a handler that returns its error to writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (o *Orchestrator) h(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			o.writeError(w, r, err)
		}
	}
}

func (o *Orchestrator) publicRoutes() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/webhooks/{app}", o.verifyWebhook).Methods(http.MethodGet)
	r.HandleFunc("/webhooks/{app}", o.receiveWebhook).Methods(http.MethodPost)
	v1 := r.PathPrefix("/v1").Subrouter()
	v1.Use(o.botAuth)
	v1.Handle("/threads/{page}/{psid}", o.h(o.botGetThread)).Methods(http.MethodGet)
	v1.Handle("/threads/{page}/{psid}/{op:pass|take|request|release|extend}", o.h(o.botControl)).Methods(http.MethodPost)
	o.graphRoutes(r)
	o.healthRoutes(r)
	r.NotFoundHandler = o.h(func(http.ResponseWriter, *http.Request) error { return errNotFound("no such endpoint") })
	return r
}

func (o *Orchestrator) healthRoutes(r *mux.Router) {
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-o.ready:
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		default:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "recovering"})
		}
	})
}

// botAuth finds the hosted app whose token_env token the request bears.
func (o *Orchestrator) botAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		for _, a := range o.apps {
			if a.apiToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.apiToken)) == 1 {
				next.ServeHTTP(w, r.WithContext(contextWithApp(r, a)))
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
		o.writeError(w, r, &apiError{http.StatusUnauthorized, "unauthorized", "missing or unknown bearer token"})
	})
}

// ThreadView is a thread as the APIs show it: app names, not only ids.
type ThreadView struct {
	PageID            string     `json:"page_id"`
	PSID              string     `json:"psid"`
	State             string     `json:"state"`
	Owner             string     `json:"owner"`
	OwnerAppID        string     `json:"owner_app_id"`
	ExpiresAt         *time.Time `json:"expires_at"`
	LastUserMessageAt *time.Time `json:"last_user_message_at"`
	UpdatedAt         *time.Time `json:"updated_at,omitempty"`
	// ActiveAt is the last message from the person or the owner.
	ActiveAt *time.Time `json:"active_at,omitempty"`
	// OwnerActiveAt is the owner's last message (or when it got control).
	OwnerActiveAt *time.Time    `json:"owner_active_at,omitempty"`
	Version       uint64        `json:"version"`
	History       []HistoryView `json:"history,omitempty"`
	// Pending are the rules' jobs waiting on the thread (return timers,
	// failbacks, escalations under way).
	Pending []JobView `json:"pending,omitempty"`
}

// JobView is a rule's pending job on a thread.
type JobView struct {
	Rule     string    `json:"rule"`
	At       time.Time `json:"at"`
	App      string    `json:"app,omitempty"`
	Target   string    `json:"target,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
}

// HistoryView is one transition as the APIs show it.
type HistoryView struct {
	At       time.Time `json:"at"`
	Event    string    `json:"event"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	By       string    `json:"by"`
	Cause    string    `json:"cause"`
	Metadata string    `json:"metadata"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (o *Orchestrator) view(th store.Thread, hist []store.HistoryEntry) ThreadView {
	v := ThreadView{PageID: th.Page, PSID: th.PSID, State: string(th.State), OwnerAppID: th.Owner,
		ExpiresAt: timePtr(th.ExpiresAt), LastUserMessageAt: timePtr(th.LastUserMessageAt), UpdatedAt: timePtr(th.UpdatedAt),
		ActiveAt: timePtr(th.ActiveAt), OwnerActiveAt: timePtr(th.OwnerActiveAt), Version: th.Version}
	if v.State == "" {
		v.State = string(statemachine.Idle)
	}
	if th.Owner != "" {
		v.Owner = o.appName(th.Owner)
	}
	if hist != nil {
		v.History = []HistoryView{}
	}
	for _, h := range hist {
		by := h.By
		if a := o.appsByID[by]; a != nil {
			by = a.name
		}
		v.History = append(v.History, HistoryView{At: h.At, Event: h.Event, From: o.nameOrEmpty(h.From), To: o.nameOrEmpty(h.To), By: by, Cause: h.Cause, Metadata: h.Metadata})
	}
	return v
}

func (o *Orchestrator) nameOrEmpty(id string) string {
	if id == "" {
		return ""
	}
	return o.appName(id)
}

// threadView reads a thread with its history; a thread Baton never saw on
// a configured page is shown idle with an empty history.
func (o *Orchestrator) threadView(pageID, psid string) (ThreadView, error) {
	p := o.pages[pageID]
	if p == nil {
		return ThreadView{}, errNotFound("page " + pageID + " is not configured")
	}
	k := store.ThreadKey{Page: pageID, PSID: psid}
	var th store.Thread
	var hist []store.HistoryEntry
	var jobs []store.Job
	err := o.store.View(func(tx store.ReadTx) error {
		var err error
		if th, err = o.loadThread(tx, p, k); err != nil {
			return err
		}
		for _, rule := range allRules {
			j, err := tx.Job(k, rule)
			switch {
			case err == nil:
				jobs = append(jobs, j)
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
		}
		hist, err = tx.History(k)
		return err
	})
	if hist == nil {
		hist = []store.HistoryEntry{}
	}
	v := o.view(th, hist)
	for _, j := range jobs {
		v.Pending = append(v.Pending, JobView{Rule: j.Rule, At: j.At, App: j.App, Target: j.Target, Reason: j.Reason, Attempts: j.Attempts})
	}
	return v, err
}

func (o *Orchestrator) botGetThread(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	tv, err := o.threadView(v["page"], v["psid"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tv)
	return nil
}

// actionBody is the body of a bot API or admin action.
type actionBody struct {
	To       string `json:"to"`
	App      string `json:"app"`
	Metadata string `json:"metadata"`
	Duration string `json:"duration"` // Go duration ("72h") or seconds
}

func decodeStrict(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return errBadRequest("read body: " + err.Error())
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errBadRequest("body: " + err.Error())
	}
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errBadRequest("duration is required")
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(secs) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errBadRequest(fmt.Sprintf("duration %q: want seconds or a Go duration such as 72h", s))
	}
	return d, nil
}

func (o *Orchestrator) botControl(w http.ResponseWriter, r *http.Request) error {
	a := appFromContext(r)
	v := mux.Vars(r)
	var body actionBody
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	req := controlRequest{Page: v["page"], PSID: v["psid"], App: a.name, Op: statemachine.Op(v["op"]), Target: body.To,
		Metadata: body.Metadata, Cause: store.CauseCall, By: a.name}
	if req.Op == statemachine.OpExtend {
		d, err := parseDuration(body.Duration)
		if err != nil {
			return err
		}
		req.Duration = d
	}
	if _, err := o.control(r.Context(), req); err != nil {
		return err
	}
	tv, err := o.threadView(req.Page, req.PSID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tv)
	return nil
}

// adminRoutes serves the admin listener. Everything under /admin/ needs
// the admin bearer token; metrics and health do not.
func (o *Orchestrator) adminRoutes() *mux.Router {
	r := mux.NewRouter()
	if o.metrics != nil {
		o.registerStoreMetricsOnce()
		r.Handle("/metrics", promhttp.HandlerFor(o.metrics.reg, promhttp.HandlerOpts{}))
	}
	o.healthRoutes(r)
	ad := r.PathPrefix("/admin").Subrouter()
	ad.Use(o.adminAuth)
	ad.Handle("/threads", o.h(o.adminListThreads)).Methods(http.MethodGet)
	ad.Handle("/threads/{page}/{psid}", o.h(o.adminGetThread)).Methods(http.MethodGet)
	ad.Handle("/threads/{page}/{psid}/{op:pass|take|release}", o.h(o.adminControl)).Methods(http.MethodPost)
	ad.Handle("/deliveries", o.h(o.adminDeliveries)).Methods(http.MethodGet)
	ad.Handle("/deliveries/{id:[0-9]+}/retry", o.h(o.adminRetry)).Methods(http.MethodPost)
	ad.Handle("/errors", o.h(o.adminErrors)).Methods(http.MethodGet)
	// Go's profiler, behind the admin token: what an operator needs when
	// Baton is slow.
	dbg := r.PathPrefix("/debug/pprof").Subrouter()
	dbg.Use(o.adminAuth)
	dbg.HandleFunc("/profile", pprof.Profile)
	dbg.HandleFunc("/trace", pprof.Trace)
	dbg.PathPrefix("/").HandlerFunc(pprof.Index)
	ad.NotFoundHandler = o.h(func(http.ResponseWriter, *http.Request) error { return errNotFound("no such endpoint") })
	r.NotFoundHandler = ad.NotFoundHandler
	return r
}

// AdminRoutes lists the admin API's routes that need the token, as
// "METHOD template", so tests can check every one is protected.
func AdminRoutes() []string {
	var o Orchestrator
	var out []string
	_ = o.adminRoutes().Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, _ := rt.GetPathTemplate()
		methods, _ := rt.GetMethods()
		if strings.HasPrefix(tpl, "/admin/") && len(methods) > 0 {
			out = append(out, methods[0]+" "+tpl)
		}
		return nil
	})
	return out
}

// AdminHandler serves the admin listener.
func (o *Orchestrator) AdminHandler() http.Handler { return o.adminRoutes() }

func (o *Orchestrator) adminAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := []byte("Bearer " + o.cfg.Admin.Token.Reveal())
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="baton-admin"`)
			o.writeError(w, r, &apiError{http.StatusUnauthorized, "unauthorized", "missing or wrong admin token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (o *Orchestrator) adminListThreads(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.ThreadFilter{Page: q.Get("page"), State: q.Get("state"), Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return errBadRequest("limit must be 1 to 1000")
		}
		f.Limit = n
	}
	switch owner := q.Get("owner"); {
	case owner == "" || owner == "idle":
		f.Owner = owner
	case o.apps[owner] != nil:
		f.Owner = o.apps[owner].id
	default:
		f.Owner = owner // an app id not in the config
	}
	var threads []store.Thread
	var next string
	err := o.store.View(func(tx store.ReadTx) error {
		var err error
		threads, next, err = tx.Threads(f)
		return err
	})
	if err != nil {
		if strings.Contains(err.Error(), "cursor") {
			return errBadRequest(err.Error())
		}
		return err
	}
	out := make([]ThreadView, 0, len(threads))
	for _, th := range threads {
		out = append(out, o.view(th, nil))
	}
	writeJSON(w, http.StatusOK, map[string]any{"threads": out, "next_cursor": next})
	return nil
}

func (o *Orchestrator) adminGetThread(w http.ResponseWriter, r *http.Request) error {
	return o.botGetThread(w, r)
}

// adminControl acts for the operator: pass with the owner's token (or the
// default app's while idle), take as the named app, release as the owner.
// When the owner is an app Baton does not host, a hosted app that may take
// control takes it first.
func (o *Orchestrator) adminControl(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	var body actionBody
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	p := o.pages[v["page"]]
	if p == nil {
		return errNotFound("page " + v["page"] + " is not configured")
	}
	tv, err := o.threadView(p.id, v["psid"])
	if err != nil {
		return err
	}
	req := controlRequest{Page: p.id, PSID: v["psid"], Op: statemachine.Op(v["op"]), Metadata: body.Metadata, Cause: store.CauseAdmin, By: "admin"}
	switch req.Op {
	case statemachine.OpTake:
		if body.App == "" {
			return errBadRequest(`take needs {"app": "<hosted app>"}`)
		}
		req.App = body.App
	case statemachine.OpPass:
		if body.To == "" {
			return errBadRequest(`pass needs {"to": "<app>"}`)
		}
		req.Target = body.To
		fallthrough
	case statemachine.OpRelease:
		actor, err := o.adminActor(r, p, tv)
		if err != nil {
			return err
		}
		req.App = actor
	}
	if _, err := o.control(r.Context(), req); err != nil {
		return err
	}
	tv, err = o.threadView(p.id, v["psid"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tv)
	return nil
}

// adminActor picks the hosted app that can act on the thread now, taking
// it from an external owner first when that is the only way.
func (o *Orchestrator) adminActor(r *http.Request, p *page, tv ThreadView) (string, error) {
	if tv.OwnerAppID == "" {
		for _, a := range p.apps {
			if _, ok := p.tokens[a.name]; ok && a.hosted {
				return a.name, nil
			}
		}
		return "", errBadRequest("no hosted app with a page token on this page")
	}
	if a := o.appsByID[tv.OwnerAppID]; a != nil && a.hosted {
		return a.name, nil
	}
	for _, a := range p.apps {
		if _, ok := p.tokens[a.name]; ok && a.hosted && p.sm.CanTake[a.id] {
			if _, err := o.control(r.Context(), controlRequest{Page: p.id, PSID: tv.PSID, App: a.name, Op: statemachine.OpTake,
				Metadata: "admin", Cause: store.CauseAdmin, By: "admin"}); err != nil {
				return "", err
			}
			return a.name, nil
		}
	}
	return "", errBadRequest(fmt.Sprintf("the owner %s is not hosted by Baton and no hosted app may take control", tv.Owner))
}

// DeliveryView is a delivery as the admin API shows it.
type DeliveryView struct {
	ID          uint64          `json:"id"`
	App         string          `json:"app"`
	PageID      string          `json:"page_id"`
	PSID        string          `json:"psid"`
	Channel     string          `json:"channel"`
	Kind        string          `json:"kind"`
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts"`
	LastError   string          `json:"last_error,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	NextAttempt *time.Time      `json:"next_attempt,omitempty"`
	DeadAt      *time.Time      `json:"dead_at,omitempty"`
	Event       json.RawMessage `json:"event"`
}

func deliveryView(d store.Delivery) DeliveryView {
	return DeliveryView{ID: d.ID, App: d.App, PageID: d.Page, PSID: d.PSID, Channel: d.Channel, Kind: d.Kind, Status: d.Status,
		Attempts: d.Attempts, LastError: d.LastError, CreatedAt: d.CreatedAt, NextAttempt: timePtr(d.NextAttempt), DeadAt: timePtr(d.DeadAt), Event: d.Event}
}

func (o *Orchestrator) adminDeliveries(w http.ResponseWriter, r *http.Request) error {
	status := r.URL.Query().Get("status")
	var ds []store.Delivery
	err := o.store.View(func(tx store.ReadTx) error {
		var err error
		switch status {
		case "", store.DeliveryDead:
			ds, err = tx.DeadDeliveries(1000)
		case store.DeliveryPending:
			ds, err = tx.PendingDeliveries()
		default:
			err = errBadRequest("status must be dead or pending")
		}
		return err
	})
	if err != nil {
		return err
	}
	out := make([]DeliveryView, 0, len(ds))
	for _, d := range ds {
		out = append(out, deliveryView(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
	return nil
}

func (o *Orchestrator) adminRetry(w http.ResponseWriter, r *http.Request) error {
	id, _ := strconv.ParseUint(mux.Vars(r)["id"], 10, 64)
	d, err := o.dispatcher.retry(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound(fmt.Sprintf("no dead delivery %d", id))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deliveryView(d))
	return nil
}

func (o *Orchestrator) adminErrors(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"errors": o.errors.list()})
	return nil
}
