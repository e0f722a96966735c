// Package dispatch delivers the outbox to the bots: FIFO per lane (one
// bot, one thread), so a slow thread never holds up another; a pool of
// workers per bot, as many as the bot's concurrency; retries with
// exponential backoff, jitter and the bot's Retry-After (up to
// max_backoff); dead letters after the bot's attempt limit. A delivery
// leaves the outbox only after a 2xx. The outbox stays in the store: in
// memory are a bounded number of lanes per bot and where each is in its
// schedule, never the deliveries (lanes.go). What follows a delivery (the
// bot's actions, the failover rule) is reached through hooks.
package dispatch

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"

	"go.uber.org/zap"
)

// Hooks are what the rest of Baton does around deliveries.
type Hooks struct {
	// OnFailure runs in the transaction that records a failed attempt
	// (the failover rule arms its job there).
	OnFailure func(tx store.Tx, d *store.Delivery) error
	// OnRecovered runs when a bot that was failing delivers again.
	OnRecovered func(app string)
	// Actions performs what a bot asked for in its answer; the lane's
	// next delivery waits for it.
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
	MaxBackoff time.Duration // the longest wait, the bot's Retry-After included
	Hooks      Hooks
	// MaxLanes bounds the lanes of each bot held in memory (default
	// DefaultMaxLanes); the rest of its outbox waits in the store until
	// there is room.
	MaxLanes int
	// Rescan, when set, reads each bot's lanes from the store again this
	// often: one of several replicas finds there the deliveries that
	// another enqueued for a thread it owns (a person's erasure notice),
	// which no Add told it of. 0: never, since one process's deliveries
	// all come through Add.
	Rescan time.Duration
	// Owns, when set, says whether this replica acts for thread k now (a
	// *store.NotOwnedError when not): one of several replicas delivers
	// only the threads of the shards it holds. The store's reads keep to
	// them; Owns is asked again just before each request to a bot, since
	// a lease can run out between the read and the request (a process
	// paused there). Nil: every thread is this process's.
	Owns func(k store.ThreadKey) error
}

// DefaultMaxLanes is the lanes per bot in memory when Deps leaves it
// unset. A lane costs a few hundred bytes of heap, but while its bot is
// down each retry reads its head's pages of the data file, which then
// count in Baton's RSS: 4,096 lanes kept a bot down with a million
// pending on a million threads near 100 MiB (docs/PERFORMANCE.md).
const DefaultMaxLanes = 4096

// maxFresh bounds the deliveries Add keeps for their first attempt (a
// few MB of events); past it, new ones are read from the store.
const maxFresh = 4096

// Dispatcher delivers the outbox.
type Dispatcher struct {
	d        Deps
	maxLanes int
	bots     map[string]*bot // hosted apps by name; fixed after New

	mu        sync.Mutex // the lanes of every bot, their queues and the timers
	timers    timers
	timerKick chan struct{}
	stopping  bool
	done      []doneMark // delivered, to be marked done in the store
	doneKick  chan struct{}
	nfresh    int // deliveries the lanes keep as Add handed them over
	wg        sync.WaitGroup

	pending atomic.Int64 // the last count read, for when the store fails
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
	if d.MaxLanes <= 0 {
		d.MaxLanes = DefaultMaxLanes
	}
	ds := &Dispatcher{d: d, maxLanes: d.MaxLanes, bots: map[string]*bot{}, timerKick: make(chan struct{}, 1), doneKick: make(chan struct{}, 1)}
	for _, a := range d.Topology.Apps() {
		if a.Hosted {
			ds.bots[a.Name] = newBot(a, &ds.mu)
		}
	}
	return ds
}

// Load reads the first page of each bot's lanes left by the last run,
// and rebuilds the bots' health from their heads' attempts; Run reads the
// rest while it delivers, so that start-up does not wait for a backlog.
// Deliveries added before Load (ingress serves first) are not queued
// twice: a lane is in memory once, and reads its head from the store.
func (ds *Dispatcher) Load() error {
	for _, b := range ds.bots {
		var heads []store.LaneHead
		err := ds.d.Store.View(func(tx store.ReadTx) error {
			var err error
			heads, err = tx.Lanes(b.app.Name, store.ThreadKey{}, ds.maxLanes)
			return err
		})
		if err != nil {
			return err
		}
		for _, h := range heads {
			if h.Attempts > 0 { // failing before the restart
				ds.d.Health.Failed(b.app.Name, h.CreatedAt)
			}
		}
		ds.mu.Lock()
		for _, h := range heads {
			if len(b.lanes) >= ds.maxLanes {
				break
			}
			ds.addLocked(b, h)
			b.scanAfter = h.ThreadKey
		}
		// Whatever did not fit, the scan reads once there is room.
		b.scanning = len(heads) == ds.maxLanes || len(b.lanes) >= ds.maxLanes
		if !b.scanning {
			b.scanAfter = store.ThreadKey{}
		}
		ds.mu.Unlock()
	}
	return nil
}

// Add hands over committed deliveries; lanes start once Run has begun.
// It only takes a lock, so a transaction's AfterCommit may call it.
func (ds *Dispatcher) Add(dels []store.Delivery) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for i := range dels {
		b := ds.bots[dels[i].App]
		if b == nil {
			continue // app removed from the config, or not hosted: stays in the outbox
		}
		l := ds.noteLocked(b, store.ThreadKey{Page: dels[i].Page, PSID: dels[i].PSID}, false)
		if l != nil && ds.nfresh < maxFresh && dels[i].Attempts == 0 {
			d := dels[i]
			l.fresh = append(l.fresh, &d)
			ds.nfresh++
		}
	}
}

// takeFresh returns the delivery Add handed over for the lane's head h,
// if the store says that it was never attempted since; it forgets that
// one and the older ones, which are done.
func (ds *Dispatcher) takeFresh(l *lane, h store.LaneHead) *store.Delivery {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var got *store.Delivery
	n := len(l.fresh)
	l.fresh = slices.DeleteFunc(l.fresh, func(d *store.Delivery) bool {
		if d.ID == h.ID && h.Attempts == 0 && d.NextAttempt.Equal(h.NextAttempt) {
			got = d
		}
		return d.ID <= h.ID
	})
	ds.nfresh -= n - len(l.fresh)
	return got
}

// Run delivers until ctx ends; it returns once every worker stopped and
// the done marks are written. Unfinished deliveries stay in the outbox.
func (ds *Dispatcher) Run(ctx context.Context) error { return ds.RunUntil(ctx, ctx) }

// RunUntil is Run with two ends: when stop ends, no lane starts another
// turn, while the attempts in flight go on under work, so that a bot's
// answer is not cut off; when work ends too, they are cancelled and stay
// in the outbox for the next dispatcher. A config reload stops the old
// dispatcher this way: a delivery is finished by the old one or attempted
// again by the new one, never by both at once. work must end once stop
// has (or with it); RunUntil returns when both workers and marks are done.
func (ds *Dispatcher) RunUntil(stop, work context.Context) error {
	ds.wg.Add(1)
	go ds.runTimers(stop)
	for _, b := range ds.bots {
		for range max(b.app.Concurrency, 1) {
			ds.wg.Add(1)
			go ds.work(work, b)
		}
		ds.wg.Add(1)
		go ds.runScan(stop, b)
		kick(b.scanKick) // what Load left for later
	}
	flushed := make(chan struct{})
	go func() { ds.flushDone(stop); close(flushed) }()
	<-stop.Done()
	ds.mu.Lock()
	ds.stopping = true
	for _, b := range ds.bots {
		b.work.Broadcast()
	}
	ds.mu.Unlock()
	ds.wg.Wait()
	<-flushed
	ds.writeDone() // marks of lanes that finished after the flusher's last pass
	return nil
}

// work runs one of a bot's workers: it takes the next ready lane and
// gives it one turn, or with batching up to batch.max of them (batch.go).
func (ds *Dispatcher) work(ctx context.Context, b *bot) {
	defer ds.wg.Done()
	bt := batchOf(b)
	var ls []*lane
	for {
		ds.mu.Lock()
		for b.ready.len() == 0 && !ds.stopping {
			b.work.Wait()
		}
		if ds.stopping || ctx.Err() != nil { // Run may not have seen ctx end yet
			ds.mu.Unlock()
			return
		}
		if bt == nil {
			l := b.ready.pop()
			l.state = running
			ds.mu.Unlock()
			ds.turn(ctx, l)
			continue
		}
		ls = takeLocked(b, ls[:0], b.app.BatchMax)
		ds.mu.Unlock()
		ds.batchTurn(ctx, b, bt, ls)
	}
}

// Pending counts the deliveries in the outbox for hosted bots.
func (ds *Dispatcher) Pending() int {
	var counts map[string]int
	err := ds.d.Store.View(func(tx store.ReadTx) error {
		var err error
		counts, err = tx.CountPending()
		return err
	})
	if err != nil {
		return int(ds.pending.Load())
	}
	n := 0
	for app, c := range counts {
		if ds.bots[app] != nil {
			n += c
		}
	}
	ds.pending.Store(int64(n))
	return n
}

// Retry moves a dead delivery back into the outbox, before the later
// deliveries of its lane. It waits for the write's outcome even when ctx
// ends, so that its answer is true, and hands the delivery to its lane on
// the commit, whoever still waits.
func (ds *Dispatcher) Retry(ctx context.Context, id uint64) (store.Delivery, error) {
	var del store.Delivery
	err := ds.d.Store.Update(context.WithoutCancel(ctx), func(tx store.Tx) error {
		d, err := tx.ReviveDelivery(id, ds.d.Clock.Now())
		if err != nil {
			return err
		}
		tx.AfterCommit(func() { del = d; ds.revived(&d) })
		return nil
	})
	return del, err
}

// revived puts a dead letter back in the schedule of its lane.
func (ds *Dispatcher) revived(d *store.Delivery) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if b := ds.bots[d.App]; b != nil {
		ds.noteLocked(b, store.ThreadKey{Page: d.Page, PSID: d.PSID}, true)
	}
}
