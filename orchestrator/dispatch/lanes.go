package dispatch

import (
	"container/heap"
	"context"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// The outbox lives in the store. In memory the dispatcher keeps, per bot,
// at most maxLanes lanes (one thread each), and of each lane only where it
// is in its schedule: which delivery is its head is read from the store
// (LanePending) each time the lane comes up, so an older delivery (a dead
// letter retried) goes first, and a lane's deliveries are never held here.
// Lanes that do not fit wait in the store; the bot's scan reads them a
// page at a time (Lanes) as lanes in memory finish.

// laneState is where a lane is in its schedule.
type laneState uint8

const (
	ready   laneState = iota // in its bot's ready queue
	waiting                  // in the timers, until its head's next attempt
	running                  // a worker holds it
	drained                  // nothing left to attempt; kept until its done marks are durable
)

// lane is one bot's deliveries on one thread, as far as scheduling needs.
type lane struct {
	bot   *bot
	key   store.ThreadKey
	state laneState
	at    time.Time // while waiting
	index int       // in the timers heap, while waiting
	// dirty: a delivery was added or revived since the lane's head was
	// last read; the lane reads again before it parks or drains.
	dirty bool
	// skip are deliveries done here whose done marks are not yet
	// durable; stuck, deliveries whose done mark or dead letter could not
	// be written: in the store they still look pending, and this run
	// must not attempt them again (a restart will, under the same id).
	skip, stuck []uint64
	// held is the head's schedule when its write failed: the store's copy
	// is behind it.
	held *store.Delivery
	// fresh are deliveries as Add handed them over, for their first
	// attempt: the lane reads its head from the store, but not the
	// delivery and its event again (at most maxFresh in all lanes).
	fresh []*store.Delivery
}

// idle reports whether the lane holds nothing a drop would lose.
func (l *lane) idle() bool { return len(l.skip) == 0 && len(l.stuck) == 0 && !l.dirty }

// bot is one hosted app: its lanes in memory, its ready queue for its
// workers, and its scan of the store for the lanes that did not fit.
type bot struct {
	app   *topology.App
	lanes map[store.ThreadKey]*lane
	ready fifo
	// A scan pass reads the bot's lanes from the store in key order from
	// scanAfter. rescan: a lane with deliveries was left out of memory
	// (no room, or before Load) since the pass began, so another pass
	// follows this one.
	scanning, rescan bool
	scanAfter        store.ThreadKey
	scanKick         chan struct{}
	work             *sync.Cond // on the dispatcher's mu: a lane is ready, or Run ends
}

func newBot(a *topology.App, mu *sync.Mutex) *bot {
	return &bot{app: a, lanes: map[store.ThreadKey]*lane{}, scanKick: make(chan struct{}, 1), work: sync.NewCond(mu)}
}

// fifo is a queue of lanes that reuses its array.
type fifo struct {
	q    []*lane
	head int
}

func (f *fifo) push(l *lane) { f.q = append(f.q, l) }

func (f *fifo) pop() *lane {
	if f.head == len(f.q) {
		return nil
	}
	l := f.q[f.head]
	f.q[f.head] = nil
	f.head++
	if f.head == len(f.q) {
		f.q, f.head = f.q[:0], 0
	}
	return l
}

func (f *fifo) len() int { return len(f.q) - f.head }

// timers are the waiting lanes of every bot, earliest first.
type timers []*lane

func (t timers) Len() int           { return len(t) }
func (t timers) Less(i, j int) bool { return t[i].at.Before(t[j].at) }
func (t timers) Swap(i, j int)      { t[i], t[j] = t[j], t[i]; t[i].index = i; t[j].index = j }
func (t *timers) Push(x any)        { l := x.(*lane); l.index = len(*t); *t = append(*t, l) }
func (t *timers) Pop() any {
	old := *t
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*t = old[:len(old)-1]
	return l
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// readyLocked puts the lane in its bot's ready queue.
func (ds *Dispatcher) readyLocked(l *lane) {
	if l.state == waiting {
		heap.Remove(&ds.timers, l.index)
	}
	l.state = ready
	l.bot.ready.push(l)
	l.bot.work.Signal()
}

// parkLocked makes the lane wait until at.
func (ds *Dispatcher) parkLocked(l *lane, at time.Time) {
	l.state, l.at = waiting, at
	heap.Push(&ds.timers, l)
	if l.index == 0 {
		kick(ds.timerKick) // a new earliest
	}
}

// drainLocked ends a lane's turn with nothing left to attempt: it leaves
// memory, or stays drained while it has marks to wait for.
func (ds *Dispatcher) drainLocked(l *lane) {
	ds.nfresh -= len(l.fresh) // all done: nothing is left to attempt
	l.fresh = nil
	if !l.idle() {
		l.state = drained
		return
	}
	if l.bot.lanes[l.key] == l {
		delete(l.bot.lanes, l.key)
	}
	if l.bot.scanning || l.bot.rescan {
		kick(l.bot.scanKick) // room for a lane the store holds
	}
}

// noteLocked tells the lane of app on thread k that it has a delivery
// (new, or a dead letter back, which goes before the lane's head: first),
// and returns it, or nil when there was no room for it in memory.
func (ds *Dispatcher) noteLocked(b *bot, k store.ThreadKey, first bool) *lane {
	l := b.lanes[k]
	if l == nil {
		if len(b.lanes) >= ds.maxLanes {
			b.rescan = true // the scan will find it
			kick(b.scanKick)
			return nil
		}
		l = &lane{bot: b, key: store.ThreadKey{Page: clone(k.Page), PSID: clone(k.PSID)}}
		b.lanes[l.key] = l
		ds.readyLocked(l)
		return l
	}
	switch l.state {
	case running:
		l.dirty = true
	case drained:
		ds.readyLocked(l)
	case waiting:
		if first {
			ds.readyLocked(l) // its head is no longer the oldest
		}
	}
	return l
}

// clone copies a string that may point into a webhook's body, so that a
// lane does not keep the whole body alive.
func clone(s string) string { return strings.Clone(s) }

// addLocked puts a lane read from the store in memory, unless it is there.
func (ds *Dispatcher) addLocked(b *bot, h store.LaneHead) {
	if b.lanes[h.ThreadKey] != nil {
		return
	}
	l := &lane{bot: b, key: h.ThreadKey}
	b.lanes[l.key] = l
	if h.NextAttempt.After(ds.d.Clock.Now()) {
		ds.parkLocked(l, h.NextAttempt)
		return
	}
	ds.readyLocked(l)
}

// runTimers makes waiting lanes ready when their time comes, until ctx
// ends. It waits on the clock for the earliest only, and asks the clock
// again only when the earliest changes.
func (ds *Dispatcher) runTimers(ctx context.Context) {
	defer ds.wg.Done()
	var armed <-chan time.Time
	var armedAt time.Time
	for {
		ds.mu.Lock()
		now := ds.d.Clock.Now()
		for len(ds.timers) > 0 && !ds.timers[0].at.After(now) {
			ds.readyLocked(ds.timers[0])
		}
		next := time.Time{}
		if len(ds.timers) > 0 {
			next = ds.timers[0].at
		}
		ds.mu.Unlock()
		switch {
		case next.IsZero():
			armed, armedAt = nil, time.Time{}
		case !next.Equal(armedAt):
			armed, armedAt = clock.At(ds.d.Clock, next), next
		}
		select {
		case <-armed:
			armedAt = time.Time{} // fired: a later wait for the same time is a new one
		case <-ds.timerKick:
		case <-ctx.Done():
			return
		}
	}
}

// scanPage is how many lanes one read of the store's lanes brings in.
const scanPage = 1000

// runScan brings the bot's lanes that wait in the store into memory while
// there is room, until ctx ends.
func (ds *Dispatcher) runScan(ctx context.Context, b *bot) {
	defer ds.wg.Done()
	var retry, rescan <-chan time.Time
	if ds.d.Rescan > 0 {
		t := time.NewTicker(ds.d.Rescan)
		defer t.Stop()
		rescan = t.C
	}
	for {
		select {
		case <-b.scanKick:
		case <-retry:
		case <-rescan:
			ds.mu.Lock()
			b.rescan = true
			ds.mu.Unlock()
		case <-ctx.Done():
			return
		}
		retry = nil
		more, err := true, error(nil)
		for ctx.Err() == nil && more && err == nil {
			more, err = ds.scanOnce(b)
		}
		if err != nil {
			ds.d.Log.Error("outbox lanes not read", zap.String("app", b.app.Name), zap.Error(err))
			retry = clock.At(ds.d.Clock, ds.d.Clock.Now().Add(ds.d.Backoff))
		}
	}
}

// scanOnce reads one page of the bot's lanes into memory and reports
// whether there is more to read now.
func (ds *Dispatcher) scanOnce(b *bot) (bool, error) {
	ds.mu.Lock()
	room := ds.maxLanes - len(b.lanes)
	if room <= 0 || (!b.scanning && !b.rescan) {
		ds.mu.Unlock()
		return false, nil
	}
	if !b.scanning {
		b.scanning, b.rescan, b.scanAfter = true, false, store.ThreadKey{}
	}
	after := b.scanAfter
	ds.mu.Unlock()
	limit := min(room, scanPage)
	var heads []store.LaneHead
	err := ds.d.Store.View(func(tx store.ReadTx) error {
		var err error
		heads, err = tx.Lanes(b.app.Name, after, limit)
		return err
	})
	if err != nil {
		return false, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, h := range heads {
		if len(b.lanes) >= ds.maxLanes && b.lanes[h.ThreadKey] == nil {
			return false, nil // a delivery took the room meanwhile; the pass goes on from here
		}
		ds.addLocked(b, h)
		b.scanAfter = h.ThreadKey
	}
	if len(heads) < limit {
		b.scanning = false // the pass is over; rescan starts another
		return b.rescan, nil
	}
	return true, nil
}
