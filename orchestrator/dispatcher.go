package orchestrator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// dispatcher delivers the outbox: FIFO per lane (one bot, one thread), so
// a slow thread never holds up another; a bounded number in flight per
// bot; retries with exponential backoff and jitter; dead letters after the
// bot's attempt limit. A delivery leaves the outbox only after a 2xx.
type dispatcher struct {
	o *Orchestrator

	mu      sync.Mutex
	lanes   map[string][]store.Delivery
	running map[string]bool
	sems    map[string]chan struct{}
	pending int
	ctx     context.Context
	wg      sync.WaitGroup

	doneMu   sync.Mutex
	done     []uint64
	doneKick chan struct{}

	healthMu sync.Mutex
	health   map[string]*botHealth // by app name
}

// botHealth is what the failover rule needs to know of a bot.
type botHealth struct {
	failingSince time.Time // zero while deliveries succeed
	lastOK       time.Time
}

func newDispatcher(o *Orchestrator) *dispatcher {
	d := &dispatcher{o: o, lanes: map[string][]store.Delivery{}, running: map[string]bool{}, sems: map[string]chan struct{}{}, doneKick: make(chan struct{}, 1),
		health: map[string]*botHealth{}}
	for _, a := range o.apps {
		if a.hosted {
			d.sems[a.name] = make(chan struct{}, a.concurrency)
		}
	}
	return d
}

// load queues the outbox left by the last run, in enqueue order.
func (d *dispatcher) load() error {
	var pending []store.Delivery
	if err := d.o.store.View(func(tx store.ReadTx) error {
		var err error
		pending, err = tx.PendingDeliveries()
		return err
	}); err != nil {
		return err
	}
	d.add(pending)
	for _, del := range pending {
		if del.Attempts > 0 { // failing before the restart
			d.failed(del.App, del.CreatedAt)
		}
	}
	return nil
}

func (d *dispatcher) healthOf(app string) *botHealth {
	h := d.health[app]
	if h == nil {
		h = &botHealth{}
		d.health[app] = h
	}
	return h
}

// failed records a failed delivery created at since.
func (d *dispatcher) failed(app string, since time.Time) {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	if h := d.healthOf(app); h.failingSince.IsZero() || since.Before(h.failingSince) {
		h.failingSince = since
	}
}

// delivered records a success and reports whether the bot was failing.
func (d *dispatcher) delivered(app string, now time.Time) (recovered bool) {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	h := d.healthOf(app)
	recovered = !h.failingSince.IsZero()
	h.failingSince, h.lastOK = time.Time{}, now
	return recovered
}

// failingSince is when the bot's oldest failing delivery was created.
func (d *dispatcher) failingSince(app string) (time.Time, bool) {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	h := d.healthOf(app)
	return h.failingSince, !h.failingSince.IsZero()
}

// recovered reports whether the bot delivered since t and is not failing.
func (d *dispatcher) recovered(app string, t time.Time) bool {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	h := d.healthOf(app)
	return h.failingSince.IsZero() && !h.lastOK.Before(t)
}

// add queues committed deliveries; lanes start once run has begun.
func (d *dispatcher) add(ds []store.Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, del := range ds {
		if d.o.apps[del.App] == nil {
			continue // app removed from the config: stays in the outbox
		}
		lane := del.Lane()
		d.lanes[lane] = append(d.lanes[lane], del)
		d.pending++
		d.startLocked(lane)
	}
}

func (d *dispatcher) startLocked(lane string) {
	if d.ctx == nil || d.running[lane] || d.ctx.Err() != nil {
		return
	}
	d.running[lane] = true
	d.wg.Add(1)
	go d.runLane(lane)
}

func (d *dispatcher) run(ctx context.Context) {
	d.mu.Lock()
	d.ctx = ctx
	for lane := range d.lanes {
		d.startLocked(lane)
	}
	d.mu.Unlock()
	flushed := make(chan struct{})
	go func() { d.flushDone(ctx); close(flushed) }()
	<-ctx.Done()
	d.wg.Wait()
	<-flushed
	d.writeDone() // marks of lanes that finished after the flusher's last pass
}

func (d *dispatcher) pendingCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending
}

// pop removes the head of a lane once it was delivered or given up on.
func (d *dispatcher) pop(lane string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lanes[lane] = d.lanes[lane][1:]
	d.pending--
}

func (d *dispatcher) runLane(lane string) {
	defer d.wg.Done()
	ctx := d.ctx
	for {
		d.mu.Lock()
		q := d.lanes[lane]
		if len(q) == 0 || ctx.Err() != nil {
			if len(q) == 0 {
				delete(d.lanes, lane)
			}
			d.running[lane] = false
			d.mu.Unlock()
			return
		}
		del := q[0]
		d.mu.Unlock()
		if !d.attempt(ctx, &del) {
			continue // rescheduled: the head stays
		}
		d.pop(lane)
	}
}

// attempt delivers the head of a lane once, after its scheduled time. It
// reports whether the delivery is finished (delivered or dead).
func (d *dispatcher) attempt(ctx context.Context, del *store.Delivery) bool {
	o := d.o
	a := o.apps[del.App]
	if del.NextAttempt.After(o.clock.Now()) {
		select {
		case <-ctx.Done():
			return false
		case <-clock.At(o.clock, del.NextAttempt):
		}
	}
	sem := d.sems[a.name]
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	start := time.Now()
	res, err := a.adapter.Deliver(ctx, d.envelope(del))
	<-sem
	o.metrics.deliverSec.WithLabelValues(a.name).Observe(time.Since(start).Seconds())
	if ctx.Err() != nil {
		return false // shutting down: it stays in the outbox for the next run
	}
	now := o.clock.Now()
	if err == nil {
		d.finish(del.ID)
		o.metrics.deliveries.WithLabelValues(a.name, "delivered").Inc()
		if d.delivered(a.name, now) {
			o.botRecovered(a.name)
		}
		o.runActions(ctx, del, res.Actions)
		return true
	}
	del.Attempts++
	del.LastError = err.Error()
	d.failed(a.name, del.CreatedAt)
	if !adapters.Retryable(err) || del.Attempts >= a.maxAttempts {
		del.DeadAt = now
		if err := o.store.Update(context.Background(), func(tx store.Tx) error {
			if err := o.noteDeliveryFailure(tx, del); err != nil {
				return err
			}
			return tx.KillDelivery(*del)
		}); err != nil {
			o.log.Error("dead letter not stored", zap.Uint64("delivery", del.ID), zap.Error(err))
		}
		o.notifyTimers() // a failover job may be armed
		o.metrics.deliveries.WithLabelValues(a.name, "dead").Inc()
		o.recordError(RecentError{Kind: "delivery", App: a.name, Page: del.Page, PSID: del.PSID,
			Message: fmt.Sprintf("delivery %d dead after %d attempt(s): %v", del.ID, del.Attempts, err)})
		return true
	}
	backoff := d.backoff(del.Attempts)
	var ae *adapters.Error
	if asAdapterError(err, &ae) && ae.RetryAfter > backoff {
		backoff = ae.RetryAfter
	}
	del.NextAttempt = now.Add(backoff)
	if err := o.store.Update(context.Background(), func(tx store.Tx) error {
		if err := o.noteDeliveryFailure(tx, del); err != nil {
			return err
		}
		return tx.UpdateDelivery(*del)
	}); err != nil {
		o.log.Error("retry schedule not stored", zap.Uint64("delivery", del.ID), zap.Error(err))
	}
	o.notifyTimers() // a failover job may be armed
	d.mu.Lock()
	if q := d.lanes[del.Lane()]; len(q) > 0 && q[0].ID == del.ID {
		q[0] = *del
	}
	d.mu.Unlock()
	o.metrics.deliveries.WithLabelValues(a.name, "retry").Inc()
	o.log.Info("delivery failed, will retry", zap.String("app", a.name), zap.Uint64("delivery", del.ID), zap.Int("attempt", del.Attempts), zap.Duration("in", backoff), zap.Error(err))
	return false
}

// finish marks a delivery done. The lane does not wait for the write:
// marks are batched into one write per commit by flushDone, and a crash
// before it lands only means the bot sees the delivery again, under the
// same id.
func (d *dispatcher) finish(id uint64) {
	d.doneMu.Lock()
	d.done = append(d.done, id)
	first := len(d.done) == 1
	d.doneMu.Unlock()
	if first {
		select {
		case d.doneKick <- struct{}{}:
		default:
		}
	}
}

// flushDone writes the done marks, one batch per store commit, until ctx
// ends; then it writes what is left.
func (d *dispatcher) flushDone(ctx context.Context) {
	for {
		select {
		case <-d.doneKick:
		case <-ctx.Done():
			d.writeDone()
			return
		}
		d.writeDone()
	}
}

func (d *dispatcher) writeDone() {
	d.doneMu.Lock()
	ids := d.done
	d.done = nil
	d.doneMu.Unlock()
	if len(ids) == 0 {
		return
	}
	err := d.o.store.Update(context.Background(), func(tx store.Tx) error {
		for _, id := range ids {
			if err := tx.DeleteDelivery(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.o.log.Error("delivered but not marked done; they will be delivered again", zap.Int("deliveries", len(ids)), zap.Error(err))
	}
}

// backoff doubles from delivery.backoff up to delivery.max_backoff, with
// jitter so that a bot coming back is not hit by every lane at once.
func (d *dispatcher) backoff(attempt int) time.Duration {
	base, ceiling := d.o.cfg.Delivery.Backoff, d.o.cfg.Delivery.MaxBackoff
	b := base
	for i := 1; i < attempt && b < ceiling; i++ {
		b *= 2
	}
	b = min(b, ceiling)
	return b/2 + rand.N(b/2+1)
}

func (d *dispatcher) envelope(del *store.Delivery) *adapters.Delivery {
	o := d.o
	owner := ""
	if del.Owner != "" {
		owner = o.appName(del.Owner)
	}
	state := del.State
	if state == "" {
		state = string(statemachine.Idle)
	}
	return &adapters.Delivery{
		ID: "dlv_" + strconv.FormatUint(del.ID, 10), App: del.App, PageID: del.Page, PSID: del.PSID,
		Channel: del.Channel, Kind: del.Kind, Attempt: del.Attempts + 1,
		Thread: adapters.Thread{State: state, Owner: owner, OwnerAppID: del.Owner},
		Event:  del.Event,
	}
}

// retry moves a dead delivery back into the outbox and its lane.
func (d *dispatcher) retry(ctx context.Context, id uint64) (store.Delivery, error) {
	var del store.Delivery
	err := d.o.store.Update(ctx, func(tx store.Tx) error {
		var err error
		del, err = tx.ReviveDelivery(id, d.o.clock.Now())
		return err
	})
	if err != nil {
		return del, err
	}
	d.add([]store.Delivery{del})
	return del, nil
}
