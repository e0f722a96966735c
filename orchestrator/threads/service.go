package threads

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// Request is one thread-control action by a hosted app, from the bot API,
// a delivery's answer, the admin API, /graph or a rule.
type Request struct {
	Page, PSID string
	App        string // acting app's name
	Op         statemachine.Op
	Target     string // pass: app name; empty for the default app
	Metadata   string
	Duration   time.Duration
	Cause      string
	By         string // who asked, for the history: the app name, "admin" or "rule:<name>"
}

// Deps are what the service needs.
type Deps struct {
	Store    store.Store
	Topology *topology.Topology
	Ledger   *Ledger
	Graph    Graph
	Clock    clock.Clock
	Log      *zap.Logger
	Metrics  *metrics.Set
	Errors   *recent.Errors
	// Wake is called after a commit that may have armed a timer or a
	// rule's job.
	Wake func()
	// Expiry wakes the expiry loop (RunExpiry).
	Expiry *clock.Bell
	// Owns, when set, says whether this replica acts for thread k now (a
	// *store.NotOwnedError when not): one of several replicas calls Meta
	// only for the threads of the shards it holds, and checks again just
	// before each call, since a lease can run out while it waits. Nil:
	// every thread is this process's.
	Owns func(k store.ThreadKey) error
}

// Service makes the thread-control calls, one thread at a time.
type Service struct {
	d     Deps
	locks keyedMutex
	queue *reconcileQueue
}

// New builds the service.
func New(d Deps) *Service {
	if d.Wake == nil {
		d.Wake = func() {}
	}
	if d.Expiry == nil {
		d.Expiry = clock.NewBell()
	}
	return &Service{d: d, queue: newReconcileQueue(reconcileQueueSize)}
}

// Current reads a thread as it stands now: control that has lapsed shows
// as lapsed, though the expiry loop may not have written it yet.
func (s *Service) Current(p *topology.Page, k store.ThreadKey) (store.Thread, error) {
	var th store.Thread
	err := s.d.Store.View(func(tx store.ReadTx) error {
		var err error
		th, err = Load(tx, p, k)
		return err
	})
	if err == nil {
		th.Thread = Expire(p, th.Thread, s.d.Clock.Now())
	}
	return th, err
}

// Control performs req: the state machine decides whether Meta would
// allow it, the intent is stored, the Graph call is made with the acting
// app's page token, and the result applied. When Meta disagrees with our
// record or the outcome is unknown (a timeout), the thread is reconciled
// with GET thread_owner.
func (s *Service) Control(ctx context.Context, req Request) (store.Thread, error) {
	p, a, cred, in, err := s.resolve(req)
	if err != nil {
		return store.Thread{}, err
	}
	// From here on, what is committed takes effect whether or not the
	// caller still waits: an intent written is settled, a call Meta
	// applied is recorded.
	k := store.ThreadKey{Page: p.ID, PSID: req.PSID}
	if err := s.owns(k); err != nil {
		return store.Thread{}, err // the owner's to do: nothing was done here
	}
	ctx = context.WithoutCancel(ctx)
	unlock := s.locks.lock(k.String())
	defer unlock()

	// A call of an earlier process left unsettled (a crash, or a replica
	// that had the thread before: RecoverIntents queued its reconcile,
	// which may not have run yet) is settled first: deciding on a record
	// that may not have it would make the same call twice.
	s.settleLeftIntent(ctx, k)

	// Check first: a call Meta would refuse is refused here, with the reason.
	th, err := s.Current(p, k)
	if err != nil {
		return th, err
	}
	in.At = s.d.Clock.Now()
	if _, err := statemachine.Apply(p.SM, th.Thread, in); err != nil {
		if th, err = s.askBeforeRefusing(ctx, p, k, req, in, err); err != nil {
			return th, fmt.Errorf("%s thread %s: %w", req.Op, k, err)
		}
	}
	intent := store.Intent{ThreadKey: k, App: a.ID, Op: string(req.Op), Target: in.Target, By: req.By, Cause: req.Cause, Metadata: req.Metadata, At: in.At}
	if err := s.d.Store.Update(ctx, func(tx store.Tx) error { return tx.PutIntent(intent) }); err != nil {
		return th, fmt.Errorf("record intent: %w", err)
	}

	err = s.call(ctx, cred, req, in.Target)
	s.d.Metrics.GraphCalls.WithLabelValues(string(req.Op), GraphResult(err)).Inc()
	if err != nil {
		s.failed(ctx, k, a, req, err, intent.At)
		return th, fmt.Errorf("%s thread %s: %w", req.Op, k, err)
	}
	out, err := s.applied(p, a, k, req, in)
	s.d.Wake()
	var no *store.NotOwnedError
	if errors.As(err, &no) {
		// Meta applied the call; the lease went while it was made, so the
		// record is the shard's next owner's to settle (the intent stays,
		// and it reconciles). Not "not owned": nothing would be undone,
		// and a client's call sent again to the owner would be made twice.
		return out, fmt.Errorf("%s thread %s: applied by Meta, not recorded here: the thread's shard moved to another replica, which reconciles it: %v", req.Op, k, err)
	}
	return out, err
}

// settleLeftIntent reconciles thread k, for a caller that holds it, when
// an intent is left on it: with the thread held, no call of this process
// is under way on it, so the intent is a call whose outcome was never
// recorded. The intent goes once the reconcile succeeds; if it fails,
// the call goes on as it would have, and the queued reconcile retries.
func (s *Service) settleLeftIntent(ctx context.Context, k store.ThreadKey) {
	var left store.Intent
	err := s.d.Store.View(func(tx store.ReadTx) error {
		var err error
		left, err = tx.Intent(k)
		return err
	})
	if err != nil {
		return // none (or unreadable: the call's own write will say)
	}
	if err := s.reconcile(ctx, k, "a "+left.Op+" call left unsettled"); err != nil {
		s.d.Log.Warn("an unsettled call not reconciled before the next", zap.String("thread", k.String()), zap.Error(err))
		return
	}
	s.clearIntent(k, left.At)
}

// owns is Deps.Owns: nil when this replica acts for k.
func (s *Service) owns(k store.ThreadKey) error {
	if s.d.Owns == nil {
		return nil
	}
	return s.d.Owns(k)
}

// askBeforeRefusing: a refusal that rests on who owns the thread rests on
// Baton's record, which may be behind Meta (a webhook Meta never sends, a
// control time Meta set longer). Baton asks Meta first, and refuses only
// what Meta's answer still refuses; when Meta cannot be asked, the call
// goes to Meta, whose answer decides. It returns the thread as it now
// stands, and the refusal if it holds.
func (s *Service) askBeforeRefusing(ctx context.Context, p *topology.Page, k store.ThreadKey, req Request, in statemachine.Input, refusal error) (store.Thread, error) {
	var th store.Thread
	if !ownerRefusal(refusal) {
		return th, refusal
	}
	if err := s.reconcile(ctx, k, "Baton's record would refuse a "+string(req.Op)+": Meta asked first"); err != nil {
		s.d.Log.Warn("thread_owner not answered; the call goes to Meta, whose answer decides", zap.String("thread", k.String()), zap.Error(err))
		return s.Current(p, k)
	}
	th, err := s.Current(p, k)
	if err != nil {
		return th, err
	}
	_, err = statemachine.Apply(p.SM, th.Thread, in)
	return th, err
}

// ownerRefusal reports whether a refusal depends on who owns the thread,
// rather than on the page's mode, permissions or the request itself.
func ownerRefusal(err error) bool {
	return errors.Is(err, statemachine.ErrNotOwner) || errors.Is(err, statemachine.ErrAlreadyOwner) || errors.Is(err, statemachine.ErrTargetIsCaller)
}

// resolve checks a request against the config and turns it into the
// state machine's input and the acting app's credentials.
func (s *Service) resolve(req Request) (*topology.Page, *topology.App, messenger.Credentials, statemachine.Input, error) {
	var in statemachine.Input
	p := s.d.Topology.Page(req.Page)
	if p == nil {
		return nil, nil, messenger.Credentials{}, in, apierr.Errorf(apierr.NotFound, "page %s is not configured", req.Page)
	}
	if !messenger.ValidID(req.PSID) {
		return nil, nil, messenger.Credentials{}, in, apierr.Errorf(apierr.Invalid, "psid %q: want 1 to %d decimal digits", req.PSID, messenger.MaxIDLength)
	}
	a := s.d.Topology.App(req.App)
	if a == nil || !a.Hosted {
		return nil, nil, messenger.Credentials{}, in, apierr.Errorf(apierr.Invalid, "app %q is not a hosted app", req.App)
	}
	cred, ok := p.Credentials(a)
	if !ok {
		return nil, nil, cred, in, apierr.Errorf(apierr.Invalid, "app %s has no page token for page %s", a.Name, p.ID)
	}
	in = statemachine.Input{Op: req.Op, Caller: a.ID, Duration: req.Duration}
	if req.Target != "" {
		t := s.d.Topology.App(req.Target)
		if t == nil {
			return nil, nil, cred, in, apierr.Errorf(apierr.Invalid, "target %q is not an app in the config", req.Target)
		}
		if !p.HasApp(t.ID) {
			return nil, nil, cred, in, apierr.Errorf(apierr.Invalid, "target %q is not on page %s", req.Target, p.ID)
		}
		in.Target = t.ID
	}
	return p, a, cred, in, nil
}

// failed handles a call Meta refused or did not answer. When the record
// may be wrong, the thread is reconciled. When the outcome is unknown,
// the intent stays until a reconcile succeeds (retried in the background,
// and at the next start); otherwise Meta applied nothing and it goes.
func (s *Service) failed(ctx context.Context, k store.ThreadKey, a *topology.App, req Request, err error, intentAt time.Time) {
	s.d.Errors.Record(recent.Error{Kind: "graph", App: a.Name, Page: k.Page, PSID: k.PSID, Message: fmt.Sprintf("%s: %v", req.Op, err)})
	uncertain := messenger.IsUncertain(err)
	if uncertain || ownershipInDoubt(err) {
		why := "Meta refused or did not answer a " + string(req.Op)
		rerr := s.reconcile(ctx, k, why) // Control holds the thread
		switch {
		case rerr == nil:
		case uncertain:
			s.d.Log.Warn("reconcile after a call with no answer failed; retrying in the background", zap.String("thread", k.String()), zap.Error(rerr))
			s.queue.retry(reconcileJob{k: k, why: why, intentAt: intentAt, attempt: 1}, s.d.Clock.Now().Add(s.retryBackoff(1)))
			return
		default:
			s.d.Log.Warn("reconcile after a refused call failed", zap.String("thread", k.String()), zap.Error(rerr))
			s.ReconcileLater(k, why)
		}
	}
	s.clearIntent(k, intentAt)
}

// clearIntent deletes the thread's intent if it is still the one made at
// at: a later call's intent stands.
func (s *Service) clearIntent(k store.ThreadKey, at time.Time) {
	err := s.d.Store.Update(context.Background(), func(tx store.Tx) error {
		in, err := tx.Intent(k)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !in.At.Equal(at)) {
			return nil
		}
		if err != nil {
			return err
		}
		return tx.DeleteIntent(k)
	})
	if err != nil {
		// Left behind, the intent is reconciled at the next start.
		s.d.Log.Warn("intent not cleared", zap.String("thread", k.String()), zap.Error(err))
	}
}

// applied records a call Meta applied on the current record, which a
// webhook may have moved meanwhile, and clears the intent.
func (s *Service) applied(p *topology.Page, a *topology.App, k store.ThreadKey, req Request, in statemachine.Input) (store.Thread, error) {
	var out store.Thread
	err := s.d.Store.Update(context.Background(), func(tx store.Tx) error {
		cur, err := Load(tx, p, k)
		if err != nil {
			return err
		}
		now := s.d.Clock.Now()
		// The call was checked against the record with lapsed control
		// lapsed (Current): apply Meta's answer to the same view, or a
		// pass back to the lapsed owner would look like no change.
		if err := s.d.Ledger.ExpireLapsed(tx, p, &cur, now); err != nil {
			return err
		}
		in.At = now
		h := store.HistoryEntry{Event: string(req.Op), By: req.By, Cause: req.Cause, Metadata: req.Metadata}
		err = s.d.Ledger.Apply(tx, p, &cur, in, h)
		if errors.Is(err, statemachine.ErrRefused) && req.Op != statemachine.OpExtend && req.Op != statemachine.OpRequest {
			// Our record moved on (a webhook landed first); Meta's answer
			// is the truth.
			err = s.d.Ledger.Apply(tx, p, &cur, statemachine.Input{Op: statemachine.OpObserve, Target: ownerAfter(p, a, req.Op, in.Target), At: now}, h)
		}
		if err != nil && !errors.Is(err, statemachine.ErrRefused) {
			return err
		}
		cur.UpdatedAt = now
		if err := tx.PutThread(cur); err != nil {
			return err
		}
		out = cur
		return tx.DeleteIntent(k)
	})
	return out, err
}

// ownerAfter is who owns a thread once Meta applied op by a.
func ownerAfter(p *topology.Page, a *topology.App, op statemachine.Op, target string) string {
	switch {
	case op == statemachine.OpTake:
		return a.ID
	case op == statemachine.OpRelease:
		return ""
	case op == statemachine.OpPass && target == "":
		return p.SM.Primary // passed to the default app
	}
	return target
}

// keyedMutex serialises work on one thread: loading, deciding and saving a
// thread's record happen under its lock, never two at once.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
