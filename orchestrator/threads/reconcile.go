package threads

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

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
// answer if ours differs.
func (s *Service) Reconcile(ctx context.Context, k store.ThreadKey, why string) error {
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
	if !to.Idle && to.AppID == "" {
		return fmt.Errorf("thread_owner %s: Meta hides the owner from %s", k, asker.Name)
	}
	return s.d.Store.Update(ctx, func(tx store.Tx) error {
		th, err := Load(tx, p, k)
		if err != nil {
			return err
		}
		now := s.d.Clock.Now()
		before := th.Version
		if err := s.d.Ledger.Apply(tx, p, &th, statemachine.Input{Op: statemachine.OpObserve, Target: string(to.AppID), At: now},
			store.HistoryEntry{Event: "thread_owner", By: "meta", Cause: store.CauseReconcile, Metadata: why}); err != nil {
			return err
		}
		if !to.Expires.IsZero() && th.Owner != "" {
			th.ExpiresAt = to.Expires
		}
		if th.Version == before && to.Expires.IsZero() {
			return nil
		}
		th.UpdatedAt = now
		return tx.PutThread(th)
	})
}

// ReconcileLater queues a reconcile for the workers of RunReconciles; a
// thread already queued or in flight is not queued twice.
func (s *Service) ReconcileLater(k store.ThreadKey, why string) {
	if !s.queue.push(k, why) {
		s.d.Errors.Record(recent.Error{Kind: "reconcile", Page: k.Page, PSID: k.PSID,
			Message: "reconcile not queued (" + why + "): too many waiting; the next contradiction asks again"})
	}
}

// RunReconciles runs queued reconciles, a few at once, until ctx ends.
func (s *Service) RunReconciles(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for range reconcileWorkers {
		g.Go(func() error {
			for {
				var job reconcileJob
				select {
				case <-ctx.Done():
					return nil
				case job = <-s.queue.ch:
				}
				rctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
				if err := s.Reconcile(rctx, job.k, job.why); err != nil && ctx.Err() == nil {
					s.d.Errors.Record(recent.Error{Kind: "reconcile", Page: job.k.Page, PSID: job.k.PSID, Message: err.Error()})
				}
				cancel()
				s.queue.done(job.k)
			}
		})
	}
	return g.Wait()
}

// RecoverIntents reconciles every thread whose thread-control call was cut
// short by a crash: whether Meta applied it is unknown.
func (s *Service) RecoverIntents(ctx context.Context) error {
	var intents []store.Intent
	if err := s.d.Store.View(func(tx store.ReadTx) error {
		var err error
		intents, err = tx.Intents()
		return err
	}); err != nil {
		return err
	}
	for _, in := range intents {
		if err := s.Reconcile(ctx, in.ThreadKey, "a "+in.Op+" call was cut short by a restart"); err != nil {
			s.d.Errors.Record(recent.Error{Kind: "reconcile", Page: in.Page, PSID: in.PSID, Message: err.Error()})
		}
		if err := s.d.Store.Update(ctx, func(tx store.Tx) error { return tx.DeleteIntent(in.ThreadKey) }); err != nil {
			return err
		}
	}
	return nil
}

type reconcileJob struct {
	k   store.ThreadKey
	why string
}

// reconcileQueue holds the reconciles waiting, at most one per thread.
type reconcileQueue struct {
	ch     chan reconcileJob
	mu     sync.Mutex
	queued map[store.ThreadKey]bool
}

func newReconcileQueue(n int) *reconcileQueue {
	return &reconcileQueue{ch: make(chan reconcileJob, n), queued: map[store.ThreadKey]bool{}}
}

func (q *reconcileQueue) push(k store.ThreadKey, why string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued[k] {
		return true
	}
	select {
	case q.ch <- reconcileJob{k, why}:
		q.queued[k] = true
		return true
	default:
		return false
	}
}

func (q *reconcileQueue) done(k store.ThreadKey) {
	q.mu.Lock()
	delete(q.queued, k)
	q.mu.Unlock()
}
