package orchestrator

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/statemachine"
)

// apiError is an error meant for the caller of an API, with its status.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errBadRequest(msg string) error { return &apiError{http.StatusBadRequest, "invalid", msg} }
func errNotFound(msg string) error   { return &apiError{http.StatusNotFound, "not_found", msg} }

// writeError maps any error to one answer, in one place: API errors keep
// their status, refusals of the state machine are conflicts, Meta's errors
// come back in Meta's envelope with 502, the rest is logged and hidden.
func (o *Orchestrator) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var ge *messenger.Error
	switch {
	case errors.As(err, &ae):
		writeJSON(w, ae.status, map[string]any{"error": map[string]string{"code": ae.code, "message": ae.msg}})
	case isRefusal(err):
		writeJSON(w, http.StatusConflict, map[string]any{"error": map[string]string{"code": "refused", "message": err.Error()}})
	case errors.As(err, &ge):
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": map[string]any{"code": "graph_api", "message": err.Error(), "graph": ge}})
	default:
		o.log.Error("request failed", zap.String("path", r.URL.Path), zap.Error(err))
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": map[string]string{"code": "internal", "message": "internal error; see the server log"}})
	}
}

func isRefusal(err error) bool {
	for _, e := range []error{statemachine.ErrNotOwner, statemachine.ErrAlreadyOwner, statemachine.ErrTargetIsCaller,
		statemachine.ErrTargetRequired, statemachine.ErrTakeNotPermitted, statemachine.ErrNotInMode, statemachine.ErrDuration,
		statemachine.ErrNotPrimary, statemachine.ErrPrimaryMayNotAsk, statemachine.ErrInvalidTransition} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// RecentError is one problem shown by GET /admin/errors, like Meta's "show
// recent errors".
type RecentError struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // webhook | delivery | graph | action | reconcile
	App     string    `json:"app,omitempty"`
	Page    string    `json:"page_id,omitempty"`
	PSID    string    `json:"psid,omitempty"`
	Message string    `json:"message"`
}

type recentErrors struct {
	mu   sync.Mutex
	buf  []RecentError
	next int
	full bool
}

func newRecentErrors(n int) *recentErrors { return &recentErrors{buf: make([]RecentError, n)} }

func (r *recentErrors) add(e RecentError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// list returns the errors, newest first.
func (r *recentErrors) list() []RecentError {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]RecentError, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

func (o *Orchestrator) recordError(e RecentError) {
	e.At = o.clock.Now()
	o.errors.add(e)
	o.metrics.errors.WithLabelValues(e.Kind).Inc()
	o.log.Warn("error", zap.String("kind", e.Kind), zap.String("app", e.App), zap.String("page", e.Page), zap.String("psid", e.PSID), zap.String("message", e.Message))
}
