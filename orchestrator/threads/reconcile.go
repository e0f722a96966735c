package threads

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// OwnerUnknown is the owner recorded when Meta shows that another app owns
// a thread but not which (thread_owner answers an app that is neither the
// owner nor the default app with the expiration only).
const OwnerUnknown = "unknown"

// maxControl is the longest control Meta grants (an Instagram ad
// thread's 30 days), with a day to spare.
const maxControl = 31 * 24 * time.Hour

const (
	// reconcileQueueSize bounds the reconciles waiting for a worker.
	reconcileQueueSize = 1024
	// reconcileWorkers bounds the thread_owner reads in flight.
	reconcileWorkers = 4
	// reconcileTimeout bounds one reconcile started in the background.
	reconcileTimeout = 30 * time.Second
)

// Reconcile asks Meta who owns the thread, as the page's default app when
// Baton hosts it (the default app sees every owner), and records Meta's
// answer if ours differs. It holds the thread, as a call does: an answer
// given before a call Baton makes must not land after it.
func (s *Service) Reconcile(ctx context.Context, k store.ThreadKey, why string) error {
	if err := s.owns(k); err != nil {
		return err
	}
	unlock := s.locks.lock(k.String())
	defer unlock()
	return s.reconcile(ctx, k, why)
}

// reconcile is Reconcile for a caller that holds the thread.
func (s *Service) reconcile(ctx context.Context, k store.ThreadKey, why string) error {
	p := s.d.Topology.Page(k.Page)
	if p == nil {
		return apierr.Errorf(apierr.NotFound, "page %s is not configured", k.Page)
	}
	asker := p.FirstActor()
	if asker == nil {
		return fmt.Errorf("no hosted app with a token on page %s can ask thread_owner", p.ID)
	}
	cred, _ := p.Credentials(asker)
	to, err := s.d.Graph.ThreadOwner(ctx, cred, messenger.ID(k.PSID))
	s.d.Metrics.GraphCalls.WithLabelValues("thread_owner", GraphResult(err)).Inc()
	if err != nil {
		return fmt.Errorf("thread_owner %s: %w", k, err)
	}
	owner := string(to.AppID)
	if !to.Idle && owner == "" {
		// Meta shows the asker only an expiration: another app owns the
		// thread. A record that says the asker or nobody is disproved; one
		// that names another app may stand.
		owner = OwnerUnknown
	}
	return s.d.Store.Update(ctx, func(tx store.Tx) error {
		th, err := Load(tx, p, k)
		if err != nil {
			return err
		}
		shown := owner
		if shown == OwnerUnknown && th.Owner != "" && th.Owner != asker.ID {
			shown = th.Owner // Meta hides who owns it; the record's other app may
		}
		now := s.d.Clock.Now()
		before := th.Version
		if err := s.d.Ledger.Apply(tx, p, &th, statemachine.Input{Op: statemachine.OpObserve, Target: shown, At: now},
			store.HistoryEntry{Event: "thread_owner", By: "meta", Cause: store.CauseReconcile, Metadata: why}); err != nil {
			return err
		}
		if !to.Expires.IsZero() && th.Owner != "" {
			// Meta's expiration, within what Meta grants (30 days for an
			// Instagram ad thread): a wild value must not become a timer
			// centuries away, or one in the past.
			th.ExpiresAt = to.Expires
			if limit := now.Add(maxControl); th.ExpiresAt.After(limit) {
				th.ExpiresAt = limit
			}
		}
		if th.Version == before && to.Expires.IsZero() {
			return nil
		}
		th.UpdatedAt = now
		return tx.PutThread(th)
	})
}

// ReconcileLater queues a reconcile for the workers of RunReconciles; a
// thread already queued or in flight is not queued twice. When too many
// wait, it is dropped and said so: the next contradiction asks again.
func (s *Service) ReconcileLater(k store.ThreadKey, why string) {
	if !s.queue.push(reconcileJob{k: k, why: why}) {
		s.d.Errors.Record(recent.Error{Kind: "reconcile", Page: k.Page, PSID: k.PSID,
			Message: "reconcile not queued (" + why + "): too many waiting; the next contradiction asks again"})
	}
}

// RunReconciles runs queued reconciles, a few at once, and puts back with
// backoff the ones that settle an intent and failed, until ctx ends.
func (s *Service) RunReconciles(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for range reconcileWorkers {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case job := <-s.queue.ch:
					s.runReconcile(ctx, job)
				}
			}
		})
	}
	g.Go(func() error { return s.runRetries(ctx) })
	return g.Wait()
}

func (s *Service) runReconcile(ctx context.Context, job reconcileJob) {
	rctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	err := s.Reconcile(rctx, job.k, job.why)
	cancel()
	switch {
	case err == nil:
		if !job.intentAt.IsZero() {
			s.clearIntent(job.k, job.intentAt)
		}
		s.queue.done(job.k)
	case ctx.Err() != nil:
		s.queue.done(job.k) // shutting down: an intent stays for the next start
	case job.intentAt.IsZero():
		s.d.Errors.Record(recent.Error{Kind: "reconcile", Page: job.k.Page, PSID: job.k.PSID, Message: err.Error()})
		s.queue.done(job.k)
	default:
		// Whether Meta applied the call is still unknown: ask again later.
		if job.attempt == 0 || job.attempt%8 == 0 {
			s.d.Errors.Record(recent.Error{Kind: "reconcile", Page: job.k.Page, PSID: job.k.PSID,
				Message: fmt.Sprintf("%v (attempt %d; asked again with backoff until Meta answers)", err, job.attempt+1)})
		}
		job.attempt++
		s.queue.retry(job, s.d.Clock.Now().Add(s.retryBackoff(job.attempt)))
	}
}

// runRetries hands the reconciles put back to the workers when they are
// due.
func (s *Service) runRetries(ctx context.Context) error {
	for {
		next, ok := s.queue.requeueDue(s.d.Clock.Now())
		wait := make(<-chan time.Time)
		if ok {
			wait = clock.At(s.d.Clock, next)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.queue.retried.C():
		case <-wait:
		}
	}
}

// retryBackoff is the wait before the attempt-th retry of a reconcile
// that settles an intent: doubling from 1 s to 5 min.
func (s *Service) retryBackoff(attempt int) time.Duration {
	return clock.Doubling(attempt, time.Second, 5*time.Minute)
}

// RecoverIntents queues a reconcile for every thread whose thread-control
// call was cut short by a crash (whether Meta applied it is unknown); each
// intent is deleted once its reconcile succeeds. It does not wait for
// Meta: readiness and deliveries are not held back by a Graph outage.
func (s *Service) RecoverIntents(ctx context.Context) error {
	var intents []store.Intent
	if err := s.d.Store.View(func(tx store.ReadTx) error {
		var err error
		intents, err = tx.Intents()
		return err
	}); err != nil {
		return err
	}
	now := s.d.Clock.Now()
	for _, in := range intents {
		s.queue.retry(reconcileJob{k: in.ThreadKey, why: "a " + in.Op + " call was cut short by a restart", intentAt: in.At}, now)
	}
	return nil
}

type reconcileJob struct {
	k   store.ThreadKey
	why string
	// intentAt names the intent the reconcile settles (zero: none); it is
	// deleted once a reconcile succeeds, and the reconcile is retried
	// until then.
	intentAt time.Time
	attempt  int
}

// reconcileQueue holds the reconciles waiting, at most one per thread:
// queued for a worker, or put back until a time.
type reconcileQueue struct {
	ch      chan reconcileJob
	retried *clock.Bell // a job was put back

	mu     sync.Mutex
	queued map[store.ThreadKey]bool
	later  []delayedJob
}

type delayedJob struct {
	at  time.Time
	job reconcileJob
}

func newReconcileQueue(n int) *reconcileQueue {
	return &reconcileQueue{ch: make(chan reconcileJob, n), retried: clock.NewBell(), queued: map[store.ThreadKey]bool{}}
}

// push queues job unless its thread is queued already; it reports false
// when the queue is full.
func (q *reconcileQueue) push(job reconcileJob) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued[job.k] {
		return true
	}
	select {
	case q.ch <- job:
		q.queued[job.k] = true
		return true
	default:
		return false
	}
}

// retry puts job back until at. Jobs that settle an intent are never
// dropped: there is one per thread at most.
func (q *reconcileQueue) retry(job reconcileJob, at time.Time) {
	q.mu.Lock()
	q.queued[job.k] = true
	replaced := false
	for i := range q.later {
		if q.later[i].job.k == job.k { // one per thread: the newest intent stands
			if job.intentAt.Before(q.later[i].job.intentAt) {
				job.intentAt = q.later[i].job.intentAt
			}
			q.later[i] = delayedJob{at, job}
			replaced = true
			break
		}
	}
	if !replaced {
		q.later = append(q.later, delayedJob{at, job})
	}
	q.mu.Unlock()
	q.retried.Ring()
}

// requeueDue moves the jobs due by now to the workers, as far as the
// queue takes them, and returns the next time one is due.
func (q *reconcileQueue) requeueDue(now time.Time) (next time.Time, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.later[:0]
	for _, d := range q.later {
		if !d.at.After(now) {
			select {
			case q.ch <- d.job:
				continue
			default:
				d.at = now.Add(time.Second) // the workers are busy: soon
			}
		}
		kept = append(kept, d)
		if !ok || d.at.Before(next) {
			next, ok = d.at, true
		}
	}
	q.later = kept
	return next, ok
}

func (q *reconcileQueue) done(k store.ThreadKey) {
	q.mu.Lock()
	delete(q.queued, k)
	q.mu.Unlock()
}
