package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// AdminHandler serves the admin listener. Everything under /admin/ and
// /debug/pprof/ needs the admin bearer token; metrics and health do not.
func (api *API) AdminHandler() http.Handler { return api.adminRoutes() }

func (api *API) adminRoutes() *mux.Router {
	r := mux.NewRouter()
	if api.d.Gatherer != nil {
		r.Handle("/metrics", promhttp.HandlerFor(api.d.Gatherer, promhttp.HandlerOpts{}))
	}
	api.RegisterHealth(r)
	ad := r.PathPrefix("/admin").Subrouter()
	ad.Use(api.adminAuth)
	ad.Handle("/threads", api.h(api.listThreads)).Methods(http.MethodGet)
	ad.Handle("/threads/{page}/{psid}", api.h(api.getThread)).Methods(http.MethodGet)
	ad.Handle("/threads/{page}/{psid}/{op:pass|take|release}", api.h(api.adminControl)).Methods(http.MethodPost)
	ad.Handle("/threads/{page}/{psid}/reconcile", api.h(api.reconcile)).Methods(http.MethodPost)
	ad.Handle("/threads/{page}/{psid}/erase", api.h(api.erase)).Methods(http.MethodPost)
	ad.Handle("/threads/{page}/{psid}/transcript", api.h(api.getTranscript)).Methods(http.MethodGet)
	ad.Handle("/transcripts", api.h(api.searchTranscripts)).Methods(http.MethodGet)
	ad.Handle("/journal", api.h(api.listJournal)).Methods(http.MethodGet)
	ad.Handle("/deliveries", api.h(api.listDeliveries)).Methods(http.MethodGet)
	ad.Handle("/deliveries/{id:[0-9]+}/retry", api.h(api.retryDelivery)).Methods(http.MethodPost)
	ad.Handle("/deliveries/retry", api.h(api.retryApp)).Methods(http.MethodPost)
	ad.Handle("/errors", api.h(api.listErrors)).Methods(http.MethodGet)
	ad.Handle("/cluster", api.h(api.clusterStatus)).Methods(http.MethodGet)
	ad.Handle("/backup", api.h(api.backup)).Methods(http.MethodGet)
	// Go's profiler, behind the admin token: what an operator needs when
	// Baton is slow.
	dbg := r.PathPrefix("/debug/pprof").Subrouter()
	dbg.Use(api.adminAuth)
	dbg.HandleFunc("/profile", pprof.Profile)
	dbg.HandleFunc("/trace", pprof.Trace)
	dbg.PathPrefix("/").HandlerFunc(pprof.Index)
	ad.NotFoundHandler = api.NotFound()
	r.NotFoundHandler = ad.NotFoundHandler
	return r
}

// AdminRoutes lists the admin API's routes that need the token, as
// "METHOD template", so tests can check every one is protected.
func AdminRoutes() []string {
	var out []string
	_ = New(Deps{}).adminRoutes().Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, _ := rt.GetPathTemplate()
		methods, _ := rt.GetMethods()
		if strings.HasPrefix(tpl, "/admin/") && len(methods) > 0 {
			out = append(out, methods[0]+" "+tpl)
		}
		return nil
	})
	return out
}

func (api *API) adminAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && api.d.Sessions != nil && api.d.AdminToken != "" {
			// A browser signed in to the console: its session cookie, and
			// the session's CSRF token on a change.
			signedIn, err := api.d.Sessions.Authorize(r)
			switch {
			case signedIn && err == nil:
				next.ServeHTTP(w, r)
				return
			case signedIn:
				api.writeError(w, r, apierr.Errorf(apierr.Forbidden, "%v", err))
				return
			}
		}
		want := []byte("Bearer " + api.d.AdminToken)
		if api.d.AdminToken == "" || subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="baton-admin"`)
			api.writeError(w, r, apierr.Errorf(apierr.Unauthorized, "missing or wrong admin token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (api *API) listThreads(w http.ResponseWriter, r *http.Request) error {
	return api.writeThreads(w, r.URL.Query())
}

// writeThreads answers a thread listing filtered by q's page, owner (an
// app's name, an app id, or idle), state, limit and cursor.
func (api *API) writeThreads(w http.ResponseWriter, q url.Values) error {
	f := store.ThreadFilter{Page: q.Get("page"), State: q.Get("state"), Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return apierr.Errorf(apierr.Invalid, "limit must be 1 to 1000")
		}
		f.Limit = n
	}
	switch owner := q.Get("owner"); {
	case owner == "" || owner == "idle":
		f.Owner = owner
	case api.d.Topology.App(owner) != nil:
		f.Owner = api.d.Topology.App(owner).ID
	default:
		f.Owner = owner // an app id not in the config
	}
	var list []store.Thread
	var next string
	err := api.d.Store.View(func(tx store.ReadTx) error {
		var err error
		list, next, err = tx.Threads(f)
		return err
	})
	if errors.Is(err, store.ErrInvalidCursor) {
		return apierr.Errorf(apierr.Invalid, "%v", err)
	}
	if err != nil {
		return err
	}
	out := make([]ThreadView, 0, len(list))
	for _, th := range list {
		out = append(out, api.view(th, nil))
	}
	WriteJSON(w, http.StatusOK, map[string]any{"threads": out, "next_cursor": next})
	return nil
}

// adminControl acts for the operator: pass with the owner's token (or the
// default app's while idle), take as the named app, release as the owner.
// When the owner is an app Baton does not host, a hosted app that may take
// control takes it first.
func (api *API) adminControl(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	var body actionBody
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	p := api.d.Topology.Page(v["page"])
	if p == nil {
		return apierr.Errorf(apierr.NotFound, "page %s is not configured", v["page"])
	}
	tv, err := api.threadView(p.ID, v["psid"])
	if err != nil {
		return err
	}
	req := threads.Request{Page: p.ID, PSID: v["psid"], Op: statemachine.Op(v["op"]), Metadata: body.Metadata, Cause: store.CauseAdmin, By: "admin"}
	switch req.Op {
	case statemachine.OpTake:
		if body.App == "" {
			return apierr.Errorf(apierr.Invalid, `take needs {"app": "<hosted app>"}`)
		}
		req.App = body.App
	case statemachine.OpPass:
		if body.To == "" {
			return apierr.Errorf(apierr.Invalid, `pass needs {"to": "<app>"}`)
		}
		req.Target = body.To
		fallthrough
	case statemachine.OpRelease:
		actor, err := api.adminActor(r.Context(), p, tv)
		if err != nil {
			return err
		}
		req.App = actor
	}
	if _, err := api.d.Threads.Control(r.Context(), req); err != nil {
		return err
	}
	if tv, err = api.threadView(p.ID, v["psid"]); err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, tv)
	return nil
}

// reconcile asks Meta who owns the thread now and records its answer:
// what an operator does when Baton may have missed what Meta sends no
// webhook for (social routing of an idle thread, an inbox marking it done,
// a take from idle).
func (api *API) reconcile(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	if api.d.Topology.Page(v["page"]) == nil {
		return apierr.Errorf(apierr.NotFound, "page %s is not configured", v["page"])
	}
	if err := validPSID(v["psid"]); err != nil {
		return err
	}
	k := store.ThreadKey{Page: v["page"], PSID: v["psid"]}
	if err := api.d.Threads.Reconcile(context.WithoutCancel(r.Context()), k, "asked by an operator"); err != nil {
		return err
	}
	tv, err := api.threadView(k.Page, k.PSID)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, tv)
	return nil
}

// adminActor picks the hosted app that can act on the thread now, taking
// it from an external owner first when that is the only way.
func (api *API) adminActor(ctx context.Context, p *topology.Page, tv ThreadView) (string, error) {
	if tv.OwnerAppID == "" {
		if a := p.FirstActor(); a != nil {
			return a.Name, nil
		}
		return "", apierr.Errorf(apierr.Invalid, "no hosted app with a page token on this page")
	}
	if a := api.d.Topology.AppByID(tv.OwnerAppID); a != nil && a.Hosted {
		return a.Name, nil
	}
	for _, a := range p.Apps {
		if p.CanAct(a) && p.SM.CanTake[a.ID] {
			if _, err := api.d.Threads.Control(ctx, threads.Request{Page: p.ID, PSID: tv.PSID, App: a.Name, Op: statemachine.OpTake,
				Metadata: "admin", Cause: store.CauseAdmin, By: "admin"}); err != nil {
				return "", err
			}
			return a.Name, nil
		}
	}
	return "", apierr.Errorf(apierr.Invalid, "the owner %s is not hosted by Baton and no hosted app may take control", tv.Owner)
}

// listDeliveries answers GET /admin/deliveries?status=dead|pending: a
// page of limit (100 by default, at most 1,000) deliveries in id order
// from cursor, and the cursor of the next page ("" after the last). A
// bot down for hours leaves a million deliveries pending; a listing must
// never read them all.
func (api *API) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	status := q.Get("status")
	if status != "" && status != store.DeliveryDead && status != store.DeliveryPending {
		return apierr.Errorf(apierr.Invalid, "status must be dead or pending")
	}
	limit, err := queryLimit(r, 100, 1000)
	if err != nil {
		return err
	}
	after, err := deliveryCursor(q.Get("cursor"))
	if err != nil {
		return err
	}
	var ds []store.Delivery
	err = api.d.Store.View(func(tx store.ReadTx) error {
		var err error
		// One more than the page tells whether there is a next one.
		if status == store.DeliveryPending {
			ds, err = tx.PendingDeliveries(after, limit+1)
		} else {
			ds, err = tx.DeadDeliveries(after, limit+1)
		}
		return err
	})
	if err != nil {
		return err
	}
	next := ""
	if len(ds) > limit {
		ds = ds[:limit]
		next = strconv.FormatUint(ds[limit-1].ID, 10)
	}
	out := make([]DeliveryView, 0, len(ds))
	for _, d := range ds {
		out = append(out, deliveryView(d))
	}
	WriteJSON(w, http.StatusOK, map[string]any{"deliveries": out, "next_cursor": next})
	return nil
}

// deliveryCursor reads a deliveries listing's cursor: the id of the last
// delivery of the previous page ("": from the first). Ids are kept when a
// dead letter goes back to the outbox, so a delivery retried while an
// operator pages may be listed on neither page; it is never listed twice.
func deliveryCursor(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, apierr.Errorf(apierr.Invalid, "cursor %.40q is not one this listing handed out", s) // %.40q: a stranger's string stays short
	}
	return id, nil
}

func (api *API) retryDelivery(w http.ResponseWriter, r *http.Request) error {
	id, _ := strconv.ParseUint(mux.Vars(r)["id"], 10, 64)
	d, err := api.d.Deliveries.Retry(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return apierr.Errorf(apierr.NotFound, "no dead delivery %d", id)
	}
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, deliveryView(d))
	return nil
}

// clusterStatus answers who the replicas are and which shards each holds.
func (api *API) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	if api.d.Cluster == nil {
		return apierr.Errorf(apierr.NotFound, "not a cluster: this Baton is one process (no cluster: in its config)")
	}
	st, err := api.d.Cluster(r.Context())
	if err != nil {
		return fmt.Errorf("read the cluster's state: %w", err)
	}
	WriteJSON(w, http.StatusOK, st)
	return nil
}

func (api *API) listErrors(w http.ResponseWriter, _ *http.Request) error {
	WriteJSON(w, http.StatusOK, map[string]any{"errors": api.d.Errors.List()})
	return nil
}
