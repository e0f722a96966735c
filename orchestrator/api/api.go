// Package api serves Baton's own HTTP APIs: the bot API under /v1/ (a
// hosted app's token acts on its threads), the admin API under /admin/
// (threads, deliveries, recent errors), health and readiness, metrics
// and the profiler. Handlers return their error to one writer, which maps
// it to a status through apierr's table.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// Threads is what the APIs need of the thread-control service.
type Threads interface {
	Control(ctx context.Context, req threads.Request) (store.Thread, error)
	Reconcile(ctx context.Context, k store.ThreadKey, why string) error
}

// Deliveries is what the admin API needs of the dispatcher.
type Deliveries interface {
	Retry(ctx context.Context, id uint64) (store.Delivery, error)
}

// Sessions recognises an operator signed in to the console: the admin
// API accepts their browser's session as well as the bearer token.
// signedIn is whether the request carries a valid session; err, when it
// does, why this request is refused all the same (a change without the
// session's CSRF token, from another origin).
type Sessions interface {
	Authorize(r *http.Request) (signedIn bool, err error)
}

// Deps are what the APIs need.
type Deps struct {
	Store      store.Store
	Topology   *topology.Topology
	Threads    Threads
	Deliveries Deliveries
	// Holds records an owner's activity (POST /v1/.../activity); nil
	// serves no such endpoint.
	Holds Holder
	// Eraser erases a person's data; nil: the admin API erases nothing.
	Eraser Eraser
	Errors *recent.Errors
	Log    *zap.Logger
	// Gatherer serves /metrics; nil serves none.
	Gatherer prometheus.Gatherer
	// AdminToken is the admin API's bearer token.
	AdminToken string
	// Sessions, when set, lets the console's signed-in browsers in.
	Sessions Sessions
	// Ready is closed once Baton recovered its work and runs.
	Ready <-chan struct{}
	// Cluster reads the replicas and their shards' leases for GET
	// /admin/cluster; nil when Baton is one process (404).
	Cluster func(ctx context.Context) (any, error)
	// Remote, when set (one replica of several), makes a call of r's
	// client on the owner of shard: what an action over many threads does
	// for the threads other replicas hold.
	Remote func(r *http.Request, shard int, method, path string) (status int, body []byte, err error)
}

// API serves the bot and admin APIs.
type API struct{ d Deps }

// New builds the APIs.
func New(d Deps) *API {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	return &API{d: d}
}

// handlerFunc is a handler that returns its error to writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (api *API) h(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			api.writeError(w, r, err)
		}
	}
}

// NotFound answers an unknown endpoint in the APIs' error shape.
func (api *API) NotFound() http.Handler {
	return api.h(func(http.ResponseWriter, *http.Request) error {
		return apierr.Errorf(apierr.NotFound, "no such endpoint")
	})
}

// writeError maps any error to one answer, in one place: the code decides
// the status; Meta's errors come back with Meta's envelope beside the
// message; internal errors are logged and hidden.
func (api *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := apierr.CodeOf(err)
	body := map[string]any{"code": code, "message": apierr.MessageOf(err)}
	if apierr.Retryable(err) {
		body["retryable"] = true
	}
	switch code {
	case apierr.GraphAPI:
		body["graph"] = asGraphError(err)
	case apierr.Unavailable:
		// Meta's envelope for "try again", as /graph answers it.
		body["graph"] = &messenger.Error{Message: "Service temporarily unavailable", Type: "OAuthException", Code: messenger.CodeService, IsTransient: true}
	case apierr.Internal:
		api.d.Log.Error("request failed", zap.String("path", r.URL.Path), zap.Error(err))
	}
	apierr.SetHeaders(w.Header(), err)
	WriteJSON(w, apierr.Status(code), map[string]any{"error": body})
}

func asGraphError(err error) *messenger.Error {
	var ge *messenger.Error
	errors.As(err, &ge)
	return ge
}

// WriteJSON writes v as JSON with status, without HTML escaping.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// RegisterHealth adds /healthz and /readyz to r.
func (api *API) RegisterHealth(r *mux.Router) {
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-api.d.Ready:
			WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		default:
			WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "recovering"})
		}
	})
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
		return apierr.Errorf(apierr.Invalid, "read body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apierr.Errorf(apierr.Invalid, "body: %v", err)
	}
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, apierr.Errorf(apierr.Invalid, "duration is required")
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(secs) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, apierr.Errorf(apierr.Invalid, "duration %q: want seconds or a Go duration such as 72h", s)
	}
	return d, nil
}
