package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// turn is one turn of a lane a worker took: read its head from the
// store, and attempt it if it is due. The lane leaves the turn ready
// (behind the bot's other ready lanes), waiting, drained or gone.
func (ds *Dispatcher) turn(ctx context.Context, l *lane) {
	if del, more := ds.due(l); del != nil {
		ds.attempt(ctx, l, del, more)
	}
}

// due reads the lane's head and returns it when it is to be attempted now,
// with whether more follow it; otherwise it puts the lane where it goes
// (waiting, drained or gone) and returns nil.
func (ds *Dispatcher) due(l *lane) (*store.Delivery, bool) {
	for {
		ds.mu.Lock()
		l.dirty = false
		skip := slices.Concat(l.skip, l.stuck)
		held := l.held
		ds.mu.Unlock()
		r, err := ds.head(l, skip, held)
		if err != nil {
			// A record that does not read: the lane tries again later
			// instead of spinning on it.
			ds.d.Log.Error("delivery not read", zap.String("app", l.bot.app.Name), zap.Stringer("thread", l.key), zap.Error(err))
			ds.d.Errors.Record(recent.Error{Kind: "delivery", App: l.bot.app.Name, Page: l.key.Page, PSID: l.key.PSID, Message: "delivery not read: " + err.Error()})
			ds.mu.Lock()
			ds.parkLocked(l, ds.d.Clock.Now().Add(ds.d.MaxBackoff))
			ds.mu.Unlock()
			return nil, false
		}
		if r.del != nil {
			return r.del, r.more
		}
		ds.mu.Lock()
		switch {
		case l.dirty: // a delivery came (or a dead letter came back) while we read
		case r.empty:
			ds.drainLocked(l)
		default:
			ds.parkLocked(l, r.at)
		}
		dirty := l.dirty
		ds.mu.Unlock()
		if !dirty {
			return nil, false
		}
	}
}

// headRead is what a lane's read found: nothing (empty), a head not due
// before at, or the head to attempt (del), and whether more follow it.
type headRead struct {
	empty bool
	at    time.Time
	del   *store.Delivery
	more  bool
}

// head reads the lane's oldest delivery not in skip and, when it is due,
// the delivery with its event: from the store, or as Add handed it over
// if the store says it was never attempted.
func (ds *Dispatcher) head(l *lane, skip []uint64, held *store.Delivery) (headRead, error) {
	var r headRead
	err := ds.d.Store.View(func(tx store.ReadTx) error {
		r = headRead{}
		heads, err := tx.LanePending(l.bot.app.Name, l.key, len(skip)+2)
		if err != nil {
			return err
		}
		heads = slices.DeleteFunc(heads, func(h store.LaneHead) bool { return slices.Contains(skip, h.ID) })
		if len(heads) == 0 {
			r.empty = true
			return nil
		}
		h := heads[0]
		r.more = len(heads) > 1
		if held != nil && held.ID == h.ID {
			h.NextAttempt = held.NextAttempt
		}
		if h.NextAttempt.After(ds.d.Clock.Now()) {
			r.at = h.NextAttempt
			return nil
		}
		if r.del = ds.takeFresh(l, h); r.del != nil {
			return nil
		}
		d, err := tx.Delivery(h.ID)
		if err != nil {
			return fmt.Errorf("delivery %d: %w", h.ID, err)
		}
		r.del = &d
		return nil
	})
	if err != nil || r.del == nil {
		return r, err
	}
	del := r.del
	if held != nil && held.ID == del.ID {
		del.Attempts, del.NextAttempt, del.LastError = held.Attempts, held.NextAttempt, held.LastError
	}
	if !del.RetriedDeadAt.IsZero() && slices.ContainsFunc(skip, func(id uint64) bool { return id > del.ID }) {
		del.LaterDelivered = true // delivered here, not yet marked in the store
	}
	return r, nil
}

// attempt delivers the lane's head once and puts the lane where it goes
// next.
func (ds *Dispatcher) attempt(ctx context.Context, l *lane, del *store.Delivery, more bool) {
	a := l.bot.app
	env := ds.envelope(del)
	if !ds.owns(l) {
		return
	}
	start := time.Now()
	res, err := a.Adapter.Deliver(ctx, env)
	ds.d.Metrics.DeliverSec.WithLabelValues(a.Name).Observe(time.Since(start).Seconds())
	ds.settle(ctx, l, del, more, res, err)
}

// owns is the last moment to find the thread's lease gone (Deps.Owns):
// past it, the bot gets the request. A lane whose lease is gone waits, as
// one whose head does not read does; the next dispatcher, on the shards
// this replica holds then, will not have it.
func (ds *Dispatcher) owns(l *lane) bool {
	if ds.d.Owns == nil {
		return true
	}
	err := ds.d.Owns(l.key)
	if err == nil {
		return true
	}
	ds.d.Log.Info("not delivered: the thread's shard is no longer this replica's", zap.String("app", l.bot.app.Name), zap.Stringer("thread", l.key), zap.Error(err))
	ds.mu.Lock()
	ds.parkLocked(l, ds.d.Clock.Now().Add(ds.d.MaxBackoff))
	ds.mu.Unlock()
	return false
}

// settle puts the lane where it goes after its head's attempt came back
// with res or err: done (and its actions run), retried later, or dead.
func (ds *Dispatcher) settle(ctx context.Context, l *lane, del *store.Delivery, more bool, res adapters.Result, err error) {
	a := l.bot.app
	if ctx.Err() != nil {
		ds.requeue(l, true) // shutting down: it stays in the outbox for the next run
		return
	}
	now := ds.d.Clock.Now()
	if err == nil {
		ds.finish(l, del.ID)
		ds.d.Metrics.Deliveries.WithLabelValues(a.Name, "delivered").Inc()
		ds.d.Metrics.DeliveryLag.WithLabelValues(a.Name).Observe(max(now.Sub(del.CreatedAt).Seconds(), 0))
		if ds.d.Health.Delivered(a.Name, now) {
			ds.d.Hooks.OnRecovered(a.Name)
		}
		if len(res.Actions) == 0 {
			ds.d.Hooks.Actions(ctx, del, nil)
			ds.requeue(l, more)
			return
		}
		// Thread control may take a while: the worker goes on with
		// other lanes, and this lane's next delivery waits for it.
		ds.wg.Add(1)
		go func() {
			defer ds.wg.Done()
			ds.d.Hooks.Actions(ctx, del, res.Actions)
			ds.requeue(l, more)
		}()
		return
	}
	prevErr := del.LastError
	del.Attempts++
	del.LastError = err.Error()
	ds.d.Health.Failed(a.Name, del.CreatedAt)
	if !adapters.Retryable(err) || del.Attempts >= a.MaxAttempts {
		ds.kill(l, del, err, now)
		ds.requeue(l, true)
		return
	}
	at := ds.reschedule(l, del, err, prevErr, now)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if l.dirty {
		ds.readyLocked(l) // something came meanwhile: read again
		return
	}
	ds.parkLocked(l, at)
}

// requeue ends a lane's turn after its head was done with: it goes behind
// the bot's other ready lanes, so that one busy thread does not keep a
// worker. more is whether the last read saw a delivery after the head;
// without it, and with nothing added since, the lane drains unread.
func (ds *Dispatcher) requeue(l *lane, more bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if !more && !l.dirty {
		ds.drainLocked(l)
		return
	}
	ds.readyLocked(l)
}

// kill moves a delivery to the dead letters. When that cannot be
// written, the lane goes on without it all the same, and a restart tries
// it again.
func (ds *Dispatcher) kill(l *lane, del *store.Delivery, cause error, now time.Time) {
	a := l.bot.app
	del.DeadAt = now
	if err := ds.d.Store.Update(context.Background(), func(tx store.Tx) error {
		if err := ds.d.Hooks.OnFailure(tx, del); err != nil {
			return err
		}
		tx.AfterCommit(ds.d.Hooks.Wake) // a failover job may be armed
		return tx.KillDelivery(*del)
	}); errors.Is(err, store.ErrNotFound) {
		ds.erased(l, del)
		return
	} else if err != nil {
		ds.d.Log.Error("dead letter not stored", zap.Uint64("delivery", del.ID), zap.Error(err))
		ds.mu.Lock()
		l.stuck = append(l.stuck, del.ID)
		ds.mu.Unlock()
	}
	ds.mu.Lock()
	l.held = nil
	ds.mu.Unlock()
	ds.d.Metrics.Deliveries.WithLabelValues(a.Name, "dead").Inc()
	ds.d.Errors.Record(recent.Error{Kind: "delivery", App: a.Name, Page: del.Page, PSID: del.PSID,
		Message: fmt.Sprintf("delivery %d dead after %d attempt(s): %v", del.ID, del.Attempts, cause)})
}

// reschedule stores the next attempt's time and returns it: the backoff,
// or the bot's Retry-After when it asks for longer, but never past
// max_backoff: a bot cannot hold its lane for longer than Baton would.
// The retry is logged when its error is not the last attempt's.
func (ds *Dispatcher) reschedule(l *lane, del *store.Delivery, cause error, prevErr string, now time.Time) time.Time {
	a := l.bot.app
	wait := Backoff(ds.d.Backoff, ds.d.MaxBackoff, del.Attempts)
	var ae *adapters.Error
	if errors.As(cause, &ae) {
		wait = max(wait, min(ae.RetryAfter, ds.d.MaxBackoff))
	}
	del.NextAttempt = now.Add(wait)
	err := ds.d.Store.Update(context.Background(), func(tx store.Tx) error {
		if err := ds.d.Hooks.OnFailure(tx, del); err != nil {
			return err
		}
		tx.AfterCommit(ds.d.Hooks.Wake) // a failover job may be armed
		return tx.UpdateDelivery(*del)
	})
	if errors.Is(err, store.ErrNotFound) {
		ds.erased(l, del)
		return del.NextAttempt
	}
	ds.mu.Lock()
	l.held = nil
	if err != nil {
		cp := *del
		cp.Event = nil
		l.held = &cp // the store is behind: this run keeps the schedule
	}
	ds.mu.Unlock()
	if err != nil {
		ds.d.Log.Error("retry schedule not stored", zap.Uint64("delivery", del.ID), zap.Error(err))
	}
	ds.d.Metrics.Deliveries.WithLabelValues(a.Name, "retry").Inc()
	if del.LastError != prevErr {
		ds.d.Log.Info("delivery failed, will retry", zap.String("app", a.Name), zap.Uint64("delivery", del.ID),
			zap.Int("attempt", del.Attempts), zap.Duration("in", wait), zap.Error(cause))
	}
	return del.NextAttempt
}

// erased settles an attempt whose delivery left the outbox meanwhile (a
// person's data was erased): nothing of it is kept, and the lane's next
// read finds what is left.
func (ds *Dispatcher) erased(l *lane, del *store.Delivery) {
	ds.mu.Lock()
	l.held = nil
	ds.mu.Unlock()
	ds.d.Log.Info("delivery erased while it was attempted", zap.String("app", l.bot.app.Name), zap.Uint64("delivery", del.ID))
}

func (ds *Dispatcher) envelope(del *store.Delivery) *adapters.Delivery {
	state := del.State
	if state == "" {
		state = string(statemachine.Idle)
	}
	env := &adapters.Delivery{
		ID: "dlv_" + strconv.FormatUint(del.ID, 10), App: del.App, PageID: del.Page, PSID: del.PSID,
		Channel: del.Channel, Kind: del.Kind, Attempt: del.Attempts + 1,
		Thread: adapters.Thread{State: state, Owner: ds.d.Topology.Name(del.Owner), OwnerAppID: del.Owner},
		Event:  del.Event,
	}
	if !del.RetriedDeadAt.IsZero() {
		env.Retried = &adapters.Retried{DeadAt: del.RetriedDeadAt, LaterDelivered: del.LaterDelivered}
	}
	return env
}
