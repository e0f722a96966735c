// Package recent keeps the problems GET /admin/errors shows, like Meta's
// "show recent errors": bounded rings, listed newest first, each problem
// also counted and logged.
package recent

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
)

// Error is one problem shown by GET /admin/errors.
type Error struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // webhook | delivery | graph | action | reconcile | rule | send_policy | deletion
	App     string    `json:"app,omitempty"`
	Page    string    `json:"page_id,omitempty"`
	PSID    string    `json:"psid,omitempty"`
	Message string    `json:"message"`
	// Refusal names why a request was refused before it could be trusted
	// ("signature", "unknown_app"): anyone can send those, as fast as they
	// like, so they keep a ring of their own and their log lines are
	// sampled, at most one a second per refusal. Empty for the rest.
	Refusal string `json:"-"`
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
	"deletion":    "data deletion request refused",
}

// refusalEvery is how often a refusal of one cause is logged.
const refusalEvery = time.Second

// Errors keeps the recent problems: a ring per kind, so that a flood of
// one kind never pushes another out, and a smaller one for all refusals.
type Errors struct {
	clock   clock.Clock
	log     *zap.Logger
	counter *prometheus.CounterVec
	n       int

	mu      sync.Mutex
	seq     uint64
	rings   map[ringKey]*ring
	sampled map[string]*sample // by refusal
}

// ringKey names a ring. Kinds come from Baton's code, never from a
// request, so the rings are few.
type ringKey struct {
	kind    string
	refused bool
}

type ring struct {
	buf  []entry
	next int
	full bool
}

// entry is a kept problem and its place in the order of all of them.
type entry struct {
	seq uint64
	e   Error
}

func (r *ring) put(e entry) {
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) all() []entry {
	if r.full {
		return r.buf
	}
	return r.buf[:r.next]
}

// sample is the log limiter of one refusal.
type sample struct {
	logged     time.Time // when its last line was written
	suppressed int       // refusals since then without a line
}

// New keeps the last n problems of each kind and the last n/4 refusals;
// counter counts them by kind.
func New(n int, clk clock.Clock, log *zap.Logger, counter *prometheus.CounterVec) *Errors {
	return &Errors{clock: clk, log: log, counter: counter, n: max(n, 1), rings: map[ringKey]*ring{}, sampled: map[string]*sample{}}
}

// Record stamps e with the time, keeps it, counts it and logs it (a
// refusal at most once a second per cause, with how many were not
// logged).
func (r *Errors) Record(e Error) {
	e.At = r.clock.Now()
	r.mu.Lock()
	r.seq++
	k := ringKey{e.Kind, e.Refusal != ""}
	rg := r.rings[k]
	if rg == nil {
		size := r.n
		if k.refused {
			size = max(r.n/4, 1)
		}
		rg = &ring{buf: make([]entry, size)}
		r.rings[k] = rg
	}
	rg.put(entry{r.seq, e})
	logIt, suppressed := true, 0
	if e.Refusal != "" {
		logIt, suppressed = r.sample(e.Refusal, e.At)
	}
	r.mu.Unlock()
	r.counter.WithLabelValues(e.Kind).Inc()
	if !logIt {
		return
	}
	what := events[e.Kind]
	if what == "" {
		what = e.Kind + " problem"
	}
	fields := []zap.Field{zap.String("kind", e.Kind), zap.String("app", e.App), zap.String("page", e.Page), zap.String("psid", e.PSID), zap.String("message", e.Message)}
	if e.Refusal != "" {
		fields = append(fields, zap.String("refusal", e.Refusal), zap.Int("not_logged", suppressed))
	}
	r.log.Warn(what, fields...)
}

// sample reports whether a refusal of this cause is logged at now, and
// how many of them went unlogged before it.
func (r *Errors) sample(cause string, now time.Time) (bool, int) {
	s := r.sampled[cause]
	if s == nil {
		s = &sample{}
		r.sampled[cause] = s
	} else if now.Sub(s.logged) < refusalEvery {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.logged, s.suppressed = now, 0
	return true, n
}

// List returns the problems kept, newest first across kinds.
func (r *Errors) List() []Error {
	r.mu.Lock()
	var all []entry
	for _, rg := range r.rings {
		all = append(all, rg.all()...)
	}
	r.mu.Unlock()
	slices.SortFunc(all, func(a, b entry) int { return cmp.Compare(b.seq, a.seq) })
	out := make([]Error, len(all))
	for i, en := range all {
		out[i] = en.e
	}
	return out
}

// Forget drops the problems kept about one person (their page and PSID,
// or their PSID in the message) and reports how many went: an erase of
// the person's data leaves no trace in memory either.
func (r *Errors) Forget(page, psid string) int {
	if psid == "" {
		return 0
	}
	about := func(e Error) bool {
		if e.Page != "" && e.Page != page {
			return false
		}
		return e.PSID == psid || containsID(e.Message, psid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rg := range r.rings {
		kept := slices.DeleteFunc(slices.Clone(rg.all()), func(en entry) bool { return about(en.e) })
		if dropped := len(rg.all()) - len(kept); dropped > 0 {
			n += dropped
			slices.SortFunc(kept, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
			*rg = ring{buf: make([]entry, len(rg.buf))}
			for _, en := range kept {
				rg.put(en)
			}
		}
	}
	return n
}

// containsID reports whether id is in s as a whole number, not part of a
// longer one.
func containsID(s, id string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], id)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(id)
		if (start == 0 || !isDigit(s[start-1])) && (end == len(s) || !isDigit(s[end])) {
			return true
		}
		i = start + 1
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
