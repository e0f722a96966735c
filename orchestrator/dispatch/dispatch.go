// Package dispatch delivers the outbox to the bots: FIFO per lane (one
// bot, one thread), so a slow thread never holds up another; a bounded
// number in flight per bot; retries with exponential backoff, jitter and
// the bot's Retry-After; dead letters after the bot's attempt limit. A
// delivery leaves the outbox only after a 2xx. What follows a delivery
// (the bot's actions, the failover rule) is reached through hooks.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// Hooks are what the rest of Baton does around deliveries.
type Hooks struct {
	// OnFailure runs in the transaction that records a failed attempt
	// (the failover rule arms its job there).
	OnFailure func(tx store.Tx, d *store.Delivery) error
	// OnRecovered runs when a bot that was failing delivers again.
	OnRecovered func(app string)
	// Actions performs what a bot asked for in its answer.
	Actions func(ctx context.Context, d *store.Delivery, acts []adapters.Action)
	// Wake is called after a write that may have armed a job.
	Wake func()
}

// Deps are what the dispatcher needs.
type Deps struct {
	Store      store.Store
	Topology   *topology.Topology
	Health     *Health
	Clock      clock.Clock
	Log        *zap.Logger
	Metrics    *metrics.Set
	Errors     *recent.Errors
	Backoff    time.Duration // the first retry's wait
	MaxBackoff time.Duration
	Hooks      Hooks
}

// Dispatcher delivers the outbox.
type Dispatcher struct {
	d    Deps
	sems map[string]chan struct{} // per bot: deliveries in flight

	mu      sync.Mutex
	lanes   map[string][]store.Delivery
	running map[string]bool
	pending int
	ctx     context.Context
	wg      sync.WaitGroup

	doneMu   sync.Mutex
	done     []uint64
	doneKick chan struct{}
}

// New builds a dispatcher; Load and Run start it.
func New(d Deps) *Dispatcher {
	h := &d.Hooks
	if h.OnFailure == nil {
		h.OnFailure = func(store.Tx, *store.Delivery) error { return nil }
	}
	if h.OnRecovered == nil {
		h.OnRecovered = func(string) {}
	}
	if h.Actions == nil {
		h.Actions = func(context.Context, *store.Delivery, []adapters.Action) {}
	}
	if h.Wake == nil {
		h.Wake = func() {}
	}
	if d.Health == nil {
		d.Health = NewHealth()
	}
	ds := &Dispatcher{d: d, lanes: map[string][]store.Delivery{}, running: map[string]bool{}, sems: map[string]chan struct{}{}, doneKick: make(chan struct{}, 1)}
	for _, a := range d.Topology.Apps() {
		if a.Hosted {
			ds.sems[a.Name] = make(chan struct{}, max(a.Concurrency, 1))
		}
	}
	return ds
}

// Load queues the outbox left by the last run, in enqueue order.
func (ds *Dispatcher) Load() error {
	var pending []store.Delivery
	if err := ds.d.Store.View(func(tx store.ReadTx) error {
		var err error
		pending, err = tx.PendingDeliveries()
		return err
	}); err != nil {
		return err
	}
	ds.Add(pending)
	for _, del := range pending {
		if del.Attempts > 0 { // failing before the restart
			ds.d.Health.Failed(del.App, del.CreatedAt)
		}
	}
	return nil
}

// Add queues committed deliveries; lanes start once Run has begun.
func (ds *Dispatcher) Add(dels []store.Delivery) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, del := range dels {
		if a := ds.d.Topology.App(del.App); a == nil || !a.Hosted {
			continue // app removed from the config: stays in the outbox
		}
		lane := del.Lane()
		ds.lanes[lane] = append(ds.lanes[lane], del)
		ds.pending++
		ds.startLocked(lane)
	}
}

func (ds *Dispatcher) startLocked(lane string) {
	if ds.ctx == nil || ds.running[lane] || ds.ctx.Err() != nil {
		return
	}
	ds.running[lane] = true
	ds.wg.Add(1)
	go ds.runLane(lane)
}

// Run delivers until ctx ends; it returns once every lane stopped and the
// done marks are written. Unfinished deliveries stay in the outbox.
func (ds *Dispatcher) Run(ctx context.Context) error {
	ds.mu.Lock()
	ds.ctx = ctx
	for lane := range ds.lanes {
		ds.startLocked(lane)
	}
	ds.mu.Unlock()
	flushed := make(chan struct{})
	go func() { ds.flushDone(ctx); close(flushed) }()
	<-ctx.Done()
	ds.wg.Wait()
	<-flushed
	ds.writeDone() // marks of lanes that finished after the flusher's last pass
	return nil
}

// Pending counts the deliveries queued in memory.
func (ds *Dispatcher) Pending() int {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.pending
}

// pop removes the head of a lane once it was delivered or given up on.
func (ds *Dispatcher) pop(lane string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.lanes[lane] = ds.lanes[lane][1:]
	ds.pending--
}

func (ds *Dispatcher) runLane(lane string) {
	defer ds.wg.Done()
	ctx := ds.ctx
	for {
		ds.mu.Lock()
		q := ds.lanes[lane]
		if len(q) == 0 || ctx.Err() != nil {
			if len(q) == 0 {
				delete(ds.lanes, lane)
			}
			ds.running[lane] = false
			ds.mu.Unlock()
			return
		}
		del := q[0]
		ds.mu.Unlock()
		if !ds.attempt(ctx, &del) {
			continue // rescheduled: the head stays
		}
		ds.pop(lane)
	}
}

// attempt delivers the head of a lane once, after its scheduled time. It
// reports whether the delivery is finished (delivered or dead).
func (ds *Dispatcher) attempt(ctx context.Context, del *store.Delivery) bool {
	a := ds.d.Topology.App(del.App)
	if del.NextAttempt.After(ds.d.Clock.Now()) {
		select {
		case <-ctx.Done():
			return false
		case <-clock.At(ds.d.Clock, del.NextAttempt):
		}
	}
	sem := ds.sems[a.Name]
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	start := time.Now()
	res, err := a.Adapter.Deliver(ctx, ds.envelope(del))
	<-sem
	ds.d.Metrics.DeliverSec.WithLabelValues(a.Name).Observe(time.Since(start).Seconds())
	if ctx.Err() != nil {
		return false // shutting down: it stays in the outbox for the next run
	}
	now := ds.d.Clock.Now()
	if err == nil {
		ds.finish(del.ID)
		ds.d.Metrics.Deliveries.WithLabelValues(a.Name, "delivered").Inc()
		if ds.d.Health.Delivered(a.Name, now) {
			ds.d.Hooks.OnRecovered(a.Name)
		}
		ds.d.Hooks.Actions(ctx, del, res.Actions)
		return true
	}
	del.Attempts++
	del.LastError = err.Error()
	ds.d.Health.Failed(a.Name, del.CreatedAt)
	if !adapters.Retryable(err) || del.Attempts >= a.MaxAttempts {
		ds.kill(a, del, err, now)
		return true
	}
	ds.reschedule(a, del, err, now)
	return false
}

// kill moves a delivery to the dead letters.
func (ds *Dispatcher) kill(a *topology.App, del *store.Delivery, cause error, now time.Time) {
	del.DeadAt = now
	if err := ds.d.Store.Update(context.Background(), func(tx store.Tx) error {
		if err := ds.d.Hooks.OnFailure(tx, del); err != nil {
			return err
		}
		return tx.KillDelivery(*del)
	}); err != nil {
		ds.d.Log.Error("dead letter not stored", zap.Uint64("delivery", del.ID), zap.Error(err))
	}
	ds.d.Hooks.Wake() // a failover job may be armed
	ds.d.Metrics.Deliveries.WithLabelValues(a.Name, "dead").Inc()
	ds.d.Errors.Record(recent.Error{Kind: "delivery", App: a.Name, Page: del.Page, PSID: del.PSID,
		Message: fmt.Sprintf("delivery %d dead after %d attempt(s): %v", del.ID, del.Attempts, cause)})
}

// reschedule stores the next attempt's time: the backoff, or the bot's
// Retry-After when it asks for longer.
func (ds *Dispatcher) reschedule(a *topology.App, del *store.Delivery, cause error, now time.Time) {
	backoff := Backoff(ds.d.Backoff, ds.d.MaxBackoff, del.Attempts)
	var ae *adapters.Error
	if errors.As(cause, &ae) && ae.RetryAfter > backoff {
		backoff = ae.RetryAfter
	}
	del.NextAttempt = now.Add(backoff)
	if err := ds.d.Store.Update(context.Background(), func(tx store.Tx) error {
		if err := ds.d.Hooks.OnFailure(tx, del); err != nil {
			return err
		}
		return tx.UpdateDelivery(*del)
	}); err != nil {
		ds.d.Log.Error("retry schedule not stored", zap.Uint64("delivery", del.ID), zap.Error(err))
	}
	ds.d.Hooks.Wake() // a failover job may be armed
	ds.mu.Lock()
	if q := ds.lanes[del.Lane()]; len(q) > 0 && q[0].ID == del.ID {
		q[0] = *del
	}
	ds.mu.Unlock()
	ds.d.Metrics.Deliveries.WithLabelValues(a.Name, "retry").Inc()
	ds.d.Log.Info("delivery failed, will retry", zap.String("app", a.Name), zap.Uint64("delivery", del.ID), zap.Int("attempt", del.Attempts), zap.Duration("in", backoff), zap.Error(cause))
}

// finish marks a delivery done. The lane does not wait for the write:
// marks are batched into one write per commit by flushDone, and a crash
// before it lands only means the bot sees the delivery again, under the
// same id.
func (ds *Dispatcher) finish(id uint64) {
	ds.doneMu.Lock()
	ds.done = append(ds.done, id)
	first := len(ds.done) == 1
	ds.doneMu.Unlock()
	if first {
		select {
		case ds.doneKick <- struct{}{}:
		default:
		}
	}
}

// flushDone writes the done marks, one batch per store commit, until ctx
// ends; then it writes what is left.
func (ds *Dispatcher) flushDone(ctx context.Context) {
	for {
		select {
		case <-ds.doneKick:
		case <-ctx.Done():
			ds.writeDone()
			return
		}
		ds.writeDone()
	}
}

func (ds *Dispatcher) writeDone() {
	ds.doneMu.Lock()
	ids := ds.done
	ds.done = nil
	ds.doneMu.Unlock()
	if len(ids) == 0 {
		return
	}
	err := ds.d.Store.Update(context.Background(), func(tx store.Tx) error {
		for _, id := range ids {
			if err := tx.DeleteDelivery(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		ds.d.Log.Error("delivered but not marked done; they will be delivered again", zap.Int("deliveries", len(ids)), zap.Error(err))
	}
}

func (ds *Dispatcher) envelope(del *store.Delivery) *adapters.Delivery {
	state := del.State
	if state == "" {
		state = string(statemachine.Idle)
	}
	return &adapters.Delivery{
		ID: "dlv_" + strconv.FormatUint(del.ID, 10), App: del.App, PageID: del.Page, PSID: del.PSID,
		Channel: del.Channel, Kind: del.Kind, Attempt: del.Attempts + 1,
		Thread: adapters.Thread{State: state, Owner: ds.d.Topology.Name(del.Owner), OwnerAppID: del.Owner},
		Event:  del.Event,
	}
}

// Retry moves a dead delivery back into the outbox and its lane.
func (ds *Dispatcher) Retry(ctx context.Context, id uint64) (store.Delivery, error) {
	var del store.Delivery
	err := ds.d.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		del, err = tx.ReviveDelivery(id, ds.d.Clock.Now())
		return err
	})
	if err != nil {
		return del, err
	}
	ds.Add([]store.Delivery{del})
	return del, nil
}
