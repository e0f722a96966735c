package threads

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// expiryBatch bounds the due timers one pass reads.
const expiryBatch = 256

// RunExpiry expires control when 24 hours (or an extension) pass without a
// message from the person, until ctx ends. Timers live in the store's
// time-ordered index: nothing per idle thread, nothing lost or doubled by
// a restart. The loop never spins: a store that cannot be read is asked
// again with backoff, and a thread whose record cannot be expired is
// skipped (shown in recent errors) and tried again later.
func (s *Service) RunExpiry(ctx context.Context) error {
	skip := map[store.ThreadKey]skipped{}
	failures := 0
	for {
		now := s.d.Clock.Now()
		wait, busy, err := s.expiryPass(ctx, now, skip)
		switch {
		case err != nil:
			failures++
			wait = now.Add(loopBackoff(failures))
			s.d.Log.Error("expiry timers not read", zap.Error(err), zap.Int("failures", failures), zap.Time("retry_at", wait))
		case busy:
			failures = 0
			continue // more may be due
		default:
			failures = 0
		}
		bell := s.d.Expiry.C()
		if failures > 0 {
			bell = nil // a store that fails is not asked again before its backoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-bell:
		case <-clock.At(s.d.Clock, wait):
		}
	}
}

// skipped is a thread whose expiry failed: not tried again before at.
type skipped struct {
	at       time.Time
	failures int
}

// expiryPass expires the threads due by now, except those skipped, and
// returns when to look again, and whether it expired any (then at once).
func (s *Service) expiryPass(ctx context.Context, now time.Time, skip map[store.ThreadKey]skipped) (wait time.Time, busy bool, err error) {
	wait = now.Add(time.Minute)
	var next time.Time
	var ok bool
	var due []store.ThreadKey
	if err := s.d.Store.View(func(tx store.ReadTx) error {
		var err error
		if next, ok, err = tx.NextTimer(); err != nil || !ok || next.After(now) {
			return err
		}
		due, err = tx.DueTimers(now, expiryBatch)
		return err
	}); err != nil {
		return wait, false, err
	}
	if ok && next.After(now) && next.Before(wait) {
		wait = next
	}
	for _, sk := range skip {
		if sk.at.After(now) && sk.at.Before(wait) {
			wait = sk.at
		}
	}
	for _, k := range due {
		if sk, ok := skip[k]; ok && sk.at.After(now) {
			continue
		}
		err := s.d.Store.Update(ctx, func(tx store.Tx) error { return s.expire(tx, k, now) })
		if err == nil {
			delete(skip, k)
			busy = true
			continue
		}
		if ctx.Err() != nil {
			return wait, false, nil
		}
		sk := skip[k]
		sk.failures++
		sk.at = now.Add(loopBackoff(sk.failures))
		skip[k] = sk
		if sk.at.Before(wait) {
			wait = sk.at
		}
		if sk.failures == 1 {
			s.d.Errors.Record(recent.Error{Kind: "expiry", Page: k.Page, PSID: k.PSID, Message: "control not expired, tried again later: " + err.Error()})
		}
		s.d.Log.Error("thread not expired", zap.String("thread", k.String()), zap.Int("failures", sk.failures), zap.Error(err))
	}
	return wait, busy, nil
}

// loopBackoff is how long a background loop waits after its n-th failure
// in a row: doubling from 1 s to 1 min.
func loopBackoff(n int) time.Duration { return clock.Doubling(n, time.Second, time.Minute) }

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
	if err := s.d.Ledger.ExpireLapsed(tx, p, &th, now); err != nil {
		return err
	}
	th.UpdatedAt = now
	return tx.PutThread(th)
}

// WakeExpiry makes the expiry loop read its next timer again.
func (s *Service) WakeExpiry() { s.d.Expiry.Ring() }
