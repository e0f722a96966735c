// Package threads is Baton's record of who controls each thread and the
// service that changes it: the ledger applies the state machine to a
// record inside a store transaction and writes the history; the service
// makes the thread-control calls one thread at a time (check, intent,
// Graph call, apply), reconciles the record with Meta's thread_owner when
// they may disagree, recovers calls a crash cut short, and expires control
// when its time runs out.
package threads

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// TransitionFunc runs in the transaction of every change of owner, after
// the history entry is written (the return rule arms or drops its timer).
type TransitionFunc func(tx store.Tx, p *topology.Page, th *store.Thread, at time.Time) error

// Ledger applies inputs to thread records and keeps their history.
type Ledger struct {
	transitions  *prometheus.CounterVec // by cause
	onTransition TransitionFunc
	wake         func()
	log          *zap.Logger
}

// NewLedger returns a ledger that counts transitions by cause, calls on
// (may be nil) in the transaction of each, and wake (may be nil) and
// logs each (log may be nil) once it committed: a new owner arms an
// expiry timer, and maybe a rule's job.
func NewLedger(transitions *prometheus.CounterVec, on TransitionFunc, wake func(), log *zap.Logger) *Ledger {
	if wake == nil {
		wake = func() {}
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Ledger{transitions: transitions, onTransition: on, wake: wake, log: log}
}

// Load reads a thread, or starts the record of a new one: idle, or owned
// by the primary on a legacy page.
func Load(tx store.ReadTx, p *topology.Page, k store.ThreadKey) (store.Thread, error) {
	th, err := tx.Thread(k)
	if errors.Is(err, store.ErrNotFound) {
		th = store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Idle}}
		if p.SM.Mode == statemachine.Legacy && p.SM.Primary != "" {
			th.State, th.Owner = statemachine.Primary, p.SM.Primary
		}
		return th, nil
	}
	if err != nil {
		return th, fmt.Errorf("load thread %s: %w", k, err)
	}
	return th, nil
}

// Apply runs the state machine on th and, when the owner changed, records
// the transition in the history; getting control counts as activity. The
// caller saves th.
//
// in.At is when it happened: Meta's timestamp for what a webhook showed,
// Baton's clock otherwise. What Meta showed (an observe) that is older
// than the evidence behind the current owner does not move it: it goes in
// the history as ignored evidence, with why.
func (l *Ledger) Apply(tx store.Tx, p *topology.Page, th *store.Thread, in statemachine.Input, h store.HistoryEntry) error {
	if in.Op == statemachine.OpObserve && StaleFor(p, th, in.Target, in.At) {
		if in.Target == th.Owner {
			return nil // older evidence of what stands: nothing to say
		}
		h.At, h.From, h.To = in.At, th.Owner, in.Target
		h.Ignored = fmt.Sprintf("older than the last transition (%s)", th.EvidenceAt.UTC().Format(time.RFC3339Nano))
		return tx.AppendHistory(th.ThreadKey, h)
	}
	res, err := statemachine.Apply(p.SM, th.Thread, in)
	if err != nil {
		return err
	}
	th.Thread = res.Thread
	if in.At.After(th.EvidenceAt) {
		th.EvidenceAt = in.At
	}
	if !res.Changed {
		return nil
	}
	h.At, h.From, h.To = in.At, res.From, res.To
	th.PreviousOwner, th.LastCause = res.From, h.Cause
	cause := h.Cause
	// The one line per recorded change of owner, logged once it is
	// durable. The PSID is a page-scoped id, there to find the thread in
	// the admin API; the history's metadata (a bot's free text) stays out.
	fields := []zap.Field{zap.String("page", th.Page), zap.String("psid", th.PSID), zap.String("from", appName(p, res.From)),
		zap.String("to", appName(p, res.To)), zap.String("event", h.Event), zap.String("by", h.By), zap.String("cause", cause)}
	tx.AfterCommit(func() {
		l.transitions.WithLabelValues(cause).Inc()
		l.log.Info("thread owner changed", fields...)
		l.wake()
	})
	if err := tx.AppendHistory(th.ThreadKey, h); err != nil {
		return fmt.Errorf("history of %s: %w", th.ThreadKey, err)
	}
	if err := transcribe(tx, p, th.ThreadKey, h); err != nil {
		return err
	}
	th.ActiveAt, th.OwnerActiveAt = in.At, in.At
	if l.onTransition == nil {
		return nil
	}
	return l.onTransition(tx, p, th, in.At)
}

// ExpireLapsed lapses control on th if its time ran out by now, recorded
// when it ran out (th.ExpiresAt), not when Baton noticed: evidence Meta
// stamped between the two is newer than the lapse, and stands.
func (l *Ledger) ExpireLapsed(tx store.Tx, p *topology.Page, th *store.Thread, now time.Time) error {
	if !statemachine.Expired(p.SM, th.Thread, now) {
		return nil
	}
	return l.Apply(tx, p, th, statemachine.Input{Op: statemachine.OpExpire, At: th.ExpiresAt},
		store.HistoryEntry{Event: "expire", By: "meta", Cause: store.CauseExpiry})
}

// appName names an app id of the page for the log: its YAML name, else
// the id (an app Meta showed that the config does not list); empty is
// idle.
func appName(p *topology.Page, id string) string {
	for _, a := range p.Apps {
		if a.ID == id {
			return a.Name
		}
	}
	return id
}

// Stale reports whether evidence from at is older than what the thread's
// owner stands on. Meta's timestamps have milliseconds, so the comparison
// does too: evidence of the same millisecond is not older.
func Stale(th *store.Thread, at time.Time) bool {
	return !at.IsZero() && at.Before(th.EvidenceAt.Truncate(time.Millisecond))
}

// StaleFor is Stale for evidence that owner owns the thread: also stale
// is evidence from the millisecond of a call Baton made that shows the
// app the call took the thread from (the previous owner, or the default
// app of a thread that was idle), which could only have sent it before
// the call.
func StaleFor(p *topology.Page, th *store.Thread, owner string, at time.Time) bool {
	if Stale(th, at) {
		return true
	}
	prev := th.PreviousOwner
	if prev == "" && p.SM.Mode == statemachine.ConversationRouting {
		prev = p.SM.Primary
	}
	byBaton := th.LastCause == store.CauseCall || th.LastCause == store.CauseRule || th.LastCause == store.CauseAdmin
	return byBaton && owner != th.Owner && owner == prev && !at.IsZero() &&
		at.Truncate(time.Millisecond).Equal(th.EvidenceAt.Truncate(time.Millisecond))
}

// Expire lapses control on th when its time ran out by t, without a
// history entry: for reads and checks that do not write.
func Expire(p *topology.Page, th statemachine.Thread, t time.Time) statemachine.Thread {
	if !statemachine.Expired(p.SM, th, t) {
		return th
	}
	res, err := statemachine.Apply(p.SM, th, statemachine.Input{Op: statemachine.OpExpire, At: t})
	if err != nil {
		return th
	}
	return res.Thread
}
