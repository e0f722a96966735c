// Package recent keeps the problems GET /admin/errors shows, like Meta's
// "show recent errors": a bounded ring, newest first, each also counted
// and logged.
package recent

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
)

// Error is one problem shown by GET /admin/errors.
type Error struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // webhook | delivery | graph | action | reconcile | rule | send_policy
	App     string    `json:"app,omitempty"`
	Page    string    `json:"page_id,omitempty"`
	PSID    string    `json:"psid,omitempty"`
	Message string    `json:"message"`
}

// what each kind of problem is, for the log line.
var events = map[string]string{
	"webhook":     "webhook refused or not usable",
	"delivery":    "delivery dead",
	"graph":       "Graph call failed",
	"action":      "bot action not done",
	"reconcile":   "reconcile failed",
	"rule":        "rule did not act",
	"send_policy": "send refused before Meta",
}

// Errors is the ring of recent problems.
type Errors struct {
	clock   clock.Clock
	log     *zap.Logger
	counter *prometheus.CounterVec

	mu   sync.Mutex
	buf  []Error
	next int
	full bool
}

// New keeps the last n problems; counter counts them by kind.
func New(n int, clk clock.Clock, log *zap.Logger, counter *prometheus.CounterVec) *Errors {
	return &Errors{clock: clk, log: log, counter: counter, buf: make([]Error, n)}
}

// Record stamps e with the time, keeps it, counts it and logs it.
func (r *Errors) Record(e Error) {
	e.At = r.clock.Now()
	r.mu.Lock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
	r.counter.WithLabelValues(e.Kind).Inc()
	what := events[e.Kind]
	if what == "" {
		what = e.Kind + " problem"
	}
	r.log.Warn(what, zap.String("kind", e.Kind), zap.String("app", e.App), zap.String("page", e.Page), zap.String("psid", e.PSID), zap.String("message", e.Message))
}

// List returns the problems kept, newest first.
func (r *Errors) List() []Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]Error, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}
