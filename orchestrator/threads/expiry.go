package threads

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// expiryBatch bounds the due timers one pass reads.
const expiryBatch = 256

// RunExpiry expires control when 24 hours (or an extension) pass without a
// message from the person, until ctx ends. Timers live in the store's
// time-ordered index: nothing per idle thread, nothing lost or doubled by
// a restart.
func (s *Service) RunExpiry(ctx context.Context) error {
	for {
		var next time.Time
		var ok bool
		if err := s.d.Store.View(func(tx store.ReadTx) error {
			var err error
			next, ok, err = tx.NextTimer()
			return err
		}); err != nil {
			s.d.Log.Error("expiry timers not read", zap.Error(err))
		}
		now := s.d.Clock.Now()
		if ok && !next.After(now) {
			if n := s.expireDue(ctx, now); n > 0 {
				continue
			}
		}
		deadline := now.Add(time.Minute)
		if ok && next.After(now) && next.Before(deadline) {
			deadline = next
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.d.Expiry.C():
		case <-clock.At(s.d.Clock, deadline):
		}
	}
}

func (s *Service) expireDue(ctx context.Context, now time.Time) int {
	var due []store.ThreadKey
	if err := s.d.Store.View(func(tx store.ReadTx) error {
		var err error
		due, err = tx.DueTimers(now, expiryBatch)
		return err
	}); err != nil {
		s.d.Log.Error("due expiry timers not read", zap.Error(err))
		return 0
	}
	for _, k := range due {
		if err := s.d.Store.Update(ctx, func(tx store.Tx) error { return s.expire(tx, k, now) }); err != nil {
			s.d.Log.Error("thread not expired", zap.String("thread", k.String()), zap.Error(err))
			return 0
		}
	}
	return len(due)
}

// expire lapses a thread whose timer is due, or moves a timer that fired
// early.
func (s *Service) expire(tx store.Tx, k store.ThreadKey, now time.Time) error {
	th, err := tx.Thread(k)
	if err != nil {
		return err
	}
	p := s.d.Topology.Page(k.Page)
	if p == nil {
		// The page left the config: drop the timer, or this loop would
		// find it due forever.
		th.ExpiresAt = time.Time{}
		return tx.PutThread(th)
	}
	if !statemachine.Expired(p.SM, th.Thread, now) {
		// The timer fired early (the person wrote since it was set, or
		// control was extended): move it to the expiry.
		if p.SM.Mode == statemachine.Legacy {
			th.ExpiresAt = time.Time{}
			return tx.PutThread(th)
		}
		return tx.RearmTimer(k)
	}
	if err := s.d.Ledger.Apply(tx, p, &th, statemachine.Input{Op: statemachine.OpExpire, At: now},
		store.HistoryEntry{Event: "expire", By: "meta", Cause: store.CauseExpiry}); err != nil {
		return err
	}
	th.UpdatedAt = now
	return tx.PutThread(th)
}

// WakeExpiry makes the expiry loop read its next timer again.
func (s *Service) WakeExpiry() { s.d.Expiry.Ring() }
