package orchestrator

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// runTimers expires control when 24 hours (or an extension) pass without a
// message from the person. Timers live in the store's time-ordered index:
// nothing per idle thread, nothing lost or doubled by a restart.
func (o *Orchestrator) runTimers(ctx context.Context) {
	for {
		var next time.Time
		var ok bool
		if err := o.store.View(func(tx store.ReadTx) error {
			var err error
			next, ok, err = tx.NextTimer()
			return err
		}); err != nil {
			o.log.Error("read timers", zap.Error(err))
		}
		now := o.clock.Now()
		if ok && !next.After(now) {
			if n := o.expireDue(ctx, now); n > 0 {
				continue
			}
		}
		deadline := now.Add(time.Minute)
		if ok && next.After(now) && next.Before(deadline) {
			deadline = next
		}
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-clock.At(o.clock, deadline):
		}
	}
}

func (o *Orchestrator) expireDue(ctx context.Context, now time.Time) int {
	var due []store.ThreadKey
	if err := o.store.View(func(tx store.ReadTx) error {
		var err error
		due, err = tx.DueTimers(now, 256)
		return err
	}); err != nil {
		o.log.Error("read due timers", zap.Error(err))
		return 0
	}
	for _, k := range due {
		p := o.pages[k.Page]
		err := o.store.Update(ctx, func(tx store.Tx) error {
			th, err := tx.Thread(k)
			if err != nil {
				return err
			}
			if p == nil {
				// The page left the config: drop the timer, or this loop
				// would find it due forever.
				th.ExpiresAt = time.Time{}
				return tx.PutThread(th)
			}
			if !statemachine.Expired(p.sm, th.Thread, now) {
				// The timer fired early (the person wrote since it was set,
				// or control was extended): move it to the expiry.
				if p.sm.Mode == statemachine.Legacy {
					th.ExpiresAt = time.Time{}
					return tx.PutThread(th)
				}
				return tx.RearmTimer(k)
			}
			if err := o.apply(tx, p, &th, statemachine.Input{Op: statemachine.OpExpire, At: now},
				store.HistoryEntry{Event: "expire", By: "meta", Cause: store.CauseExpiry}); err != nil {
				return err
			}
			th.UpdatedAt = now
			return tx.PutThread(th)
		})
		if err != nil {
			o.log.Error("expire thread", zap.String("thread", k.String()), zap.Error(err))
			return 0
		}
	}
	return len(due)
}

// runSweeper deletes expired dedup marks and the journal's entries past
// their retention every hour.
func (o *Orchestrator) runSweeper(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.clock.After(time.Hour):
		}
		err := o.store.Update(ctx, func(tx store.Tx) error {
			_, err := tx.SweepSeen(o.clock.Now(), DedupWindow)
			return err
		})
		if err != nil {
			o.log.Error("sweep dedup marks", zap.Error(err))
		}
		o.pruneJournal(ctx)
	}
}

// pruneBatch bounds one transaction of journal pruning: webhooks wait for
// the write lock meanwhile.
const pruneBatch = 2000

// pruneJournal deletes the journal's entries older than its retention, a
// batch per transaction, and reports how many went.
func (o *Orchestrator) pruneJournal(ctx context.Context) int {
	before := o.clock.Now().Add(-o.cfg.Webhooks.JournalRetention)
	total := 0
	for ctx.Err() == nil {
		var n int
		err := o.store.Update(ctx, func(tx store.Tx) error {
			var err error
			n, err = tx.PruneJournal(before, pruneBatch)
			return err
		})
		if err != nil {
			o.log.Error("prune journal", zap.Error(err))
			break
		}
		total += n
		o.metrics.pruned.Add(float64(n))
		if n < pruneBatch {
			break
		}
	}
	if total > 0 {
		o.log.Info("journal pruned", zap.Int("entries", total), zap.Time("received_before", before))
	}
	return total
}
