package cluster

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/store"
)

// Run keeps the membership until ctx ends or Handoff stops it, and
// returns once it stopped (nil; an error only for a second Run).
//
// Three loops run. Two renew the held leases (one statement) and the
// heartbeat every Tick, whatever else is slow. The third, the assigner,
// reads the cluster every Tick, takes the shards the rendezvous gives
// this replica and hands back those it gives another, and calls apply
// with each new scope: a scope without the leases lost, at once (at the
// lost lease's local deadline, by a timer, when the database stopped
// answering); a scope without the shards to hand back, before they are
// released; a scope with the shards newly taken, at most once a round.
//
// apply is called from one goroutine, one call at a time; it must return
// only once the replica acts for the new scope alone. Run calls it no
// more once ctx ended (one call may be in flight then; Run returns after
// it). Before the first apply the replica acts for no shard.
func (m *Member) Run(ctx context.Context, apply func(Scope)) error {
	m.mu.Lock()
	switch {
	case m.started:
		m.mu.Unlock()
		return errors.New("cluster: Run called twice")
	case m.leaving:
		m.mu.Unlock()
		return errStopped
	}
	m.started = true
	ctx, cancel := context.WithCancel(ctx)
	m.stop = cancel
	m.mu.Unlock()
	defer close(m.done)
	defer cancel()

	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){m.renewLoop, m.beatLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	m.assignLoop(ctx, apply)
	cancel()
	wg.Wait()
	return nil
}

// window is how long a lease may be acted under after its statement was
// sent: no call the member makes is worth waiting for longer.
func (m *Member) window() time.Duration { return m.opt.Terms.TTL - m.opt.Terms.Margin }

// renewLoop renews the leases every tick.
func (m *Member) renewLoop(ctx context.Context) {
	f := failures{log: m.log, what: "lease renewal failed"}
	t := time.NewTicker(m.opt.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.renew(ctx, &f)
		}
	}
}

// beatLoop beats every tick, beside the renewals, so that neither waits
// for the other's stalled call.
func (m *Member) beatLoop(ctx context.Context) {
	f := failures{log: m.log, what: "heartbeat failed"}
	t := time.NewTicker(m.opt.Tick)
	defer t.Stop()
	var once sync.Once
	for {
		cctx, cancel := context.WithTimeout(ctx, m.window())
		err := m.db.Heartbeat(cctx, m.id, m.opt.Addr, m.opt.Terms.TTL)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			f.fail(err)
		default:
			f.ok()
			once.Do(func() { close(m.firstBeat) })
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// renew renews every held lease still live, in one statement, and tells
// the assigner of those lost.
func (m *Member) renew(ctx context.Context, f *failures) {
	now := time.Now()
	m.mu.Lock()
	sent := make(map[int]*cell, len(m.held))
	leases := make([]store.Lease, 0, len(m.held))
	var first time.Time
	for s, c := range m.held {
		if l, ok := c.live(now); ok {
			sent[s] = c
			leases = append(leases, l)
			if first.IsZero() || l.Deadline.Before(first) {
				first = l.Deadline
			}
		}
	}
	m.mu.Unlock()
	if len(leases) == 0 {
		return
	}
	// An answer after the earliest deadline comes too late for that
	// lease (the cell refuses it); bounding the call there keeps a
	// stalled database from holding the loop past it.
	cctx, cancel := context.WithDeadline(ctx, first)
	renewed, lost, err := m.db.RenewMany(cctx, leases, m.opt.Terms)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			f.fail(err)
		}
		return
	}
	f.ok()
	now = time.Now()
	gone := false
	for _, l := range renewed {
		if c := sent[l.Shard]; c != nil && !c.renew(l, now) {
			gone = true
		}
	}
	for _, l := range lost {
		if c := sent[l.Shard]; c != nil {
			c.kill(now)
			gone = true
		}
	}
	if gone {
		select {
		case m.lost <- struct{}{}:
		default: // the assigner has one to see already
		}
	}
}

// roundFailures are the assigner's failing operations.
type roundFailures struct{ read, acquire, release failures }

// assignLoop runs a round every tick, and settles a loss as soon as the
// renewal loop reports one or a lease's local deadline passes.
func (m *Member) assignLoop(ctx context.Context, apply func(Scope)) {
	select {
	case <-ctx.Done():
		return
	case <-m.firstBeat:
	}
	f := &roundFailures{
		read:    failures{log: m.log, what: "reading the cluster failed"},
		acquire: failures{log: m.log, what: "acquiring a shard failed"},
		release: failures{log: m.log, what: "releasing a shard failed"},
	}
	t := time.NewTicker(m.opt.Tick)
	defer t.Stop()
	deadline := time.NewTimer(time.Hour)
	defer deadline.Stop()
	m.round(ctx, apply, f)
	for {
		if d, ok := m.nextDeadline(); ok {
			deadline.Reset(time.Until(d))
		} else {
			deadline.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.round(ctx, apply, f)
		case <-m.lost:
			m.settle(ctx, apply, nil, f)
		case <-deadline.C:
			m.settle(ctx, apply, nil, f)
		}
	}
}

// nextDeadline is the earliest local deadline of the held leases (a
// dead one's too: the settle it wakes drops it).
func (m *Member) nextDeadline() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var first time.Time
	now := time.Now()
	for _, c := range m.held {
		l, _ := c.live(now)
		if first.IsZero() || l.Deadline.Before(first) {
			first = l.Deadline
		}
	}
	return first, !first.IsZero()
}

// callCtx bounds one of the assigner's calls: by the lease window, and by
// the earliest held lease's deadline, so that a stalled call does not
// keep the assigner from telling of that lease's loss.
func (m *Member) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	end := time.Now().Add(m.window())
	if d, ok := m.nextDeadline(); ok && d.Before(end) {
		end = d
	}
	return context.WithDeadline(ctx, end)
}

// round reads the cluster, takes the shards this replica should hold and
// are free, and settles: one apply, then the hand-offs.
func (m *Member) round(ctx context.Context, apply func(Scope), f *roundFailures) {
	if m.onRound != nil {
		defer m.onRound()
	}
	m.settle(ctx, apply, nil, f) // a loss first: the calls below are bounded by the leases' deadlines
	rctx, cancel := m.callCtx(ctx)
	reps, err := m.db.Replicas(rctx)
	var rows []store.ShardLease
	if err == nil {
		rows, err = m.db.Leases(rctx)
	}
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			f.read.fail(err)
		}
		m.settle(ctx, apply, nil, f) // cut short at a lease's deadline: tell of its loss now
		return
	}
	f.read.ok()
	want := assign(m.note(reps, rows), m.db.Shards())
	acquired := m.acquire(ctx, want, rows, f)
	if len(acquired) > 0 {
		m.log.Info("shards acquired", zap.String("shards", Ranges(acquired)), zap.Int("count", len(acquired)))
		m.met.addMoves(len(acquired), 0)
	}
	m.settle(ctx, apply, want, f)
	select {
	case <-m.ready:
	default:
		if ctx.Err() == nil {
			close(m.ready)
		}
	}
}

// note records the read (for Owner), logs the replicas that came and
// went, and returns the live replicas' distinct names, this one's among
// them whatever the read says: it is alive, and wants its shards.
func (m *Member) note(reps []store.Replica, rows []store.ShardLease) []string {
	live := map[string]bool{}
	addrs := make(map[string]string, len(reps))
	for _, r := range reps {
		addrs[r.ID] = r.Addr
		if r.Live {
			live[r.ID] = true
		}
	}
	view := make([]store.ShardLease, m.db.Shards())
	for _, r := range rows {
		if r.Shard >= 0 && r.Shard < len(view) {
			view[r.Shard] = r
		}
	}
	m.mu.Lock()
	prev := m.live
	m.live, m.addrs, m.view = live, addrs, view
	m.mu.Unlock()

	names := map[string]bool{m.opt.Name: true}
	for id := range live {
		names[NameOf(id)] = true
		if id == m.id || prev[id] {
			continue
		}
		if NameOf(id) == m.opt.Name {
			// An earlier start whose heartbeat has not run out yet, or
			// (if it stays) a second replica configured with this name:
			// the two are given the same shards, and hold what each got.
			m.log.Info("another live replica has this replica's name", zap.String("other", id))
		} else {
			m.log.Info("replica joined", zap.String("other", id), zap.String("addr", addrs[id]))
		}
	}
	for id := range prev {
		if !live[id] && id != m.id {
			m.log.Info("replica left", zap.String("other", id))
		}
	}
	m.met.setLive(len(live))
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	return out
}

// acquire takes the shards want gives this replica that it does not hold
// and that no other replica's lease holds by rows; a lease of its own
// that it does not hold any more (lost at its local deadline, or taken by
// a call whose answer never came) it releases first. It stops at a loss,
// which must be applied before anything, and at a failure other than
// ErrLeaseHeld. It returns the shards taken.
func (m *Member) acquire(ctx context.Context, want []string, rows []store.ShardLease, f *roundFailures) []int {
	byShard := make(map[int]store.ShardLease, len(rows))
	for _, r := range rows {
		byShard[r.Shard] = r
	}
	var got []int
	for s, name := range want {
		if name != m.opt.Name || ctx.Err() != nil {
			continue
		}
		m.mu.Lock()
		_, have := m.held[s]
		m.mu.Unlock()
		row := byShard[s]
		if have || row.Held && row.Owner != m.id {
			continue // ours already, or another's until it runs out or is handed off
		}
		if m.anyLost() {
			break
		}
		if row.Held { // ours by the database only: nothing acts under it
			m.releaseLease(ctx, store.Lease{Shard: s, Owner: m.id, Epoch: row.Epoch}, f)
		}
		cctx, cancel := m.callCtx(ctx)
		l, err := m.db.Acquire(cctx, m.id, s, m.opt.Terms)
		cancel()
		if errors.Is(err, store.ErrLeaseHeld) {
			f.acquire.ok()
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				f.acquire.fail(err)
			}
			break
		}
		f.acquire.ok()
		m.mu.Lock()
		m.held[s] = newCell(l)
		m.mu.Unlock()
		got = append(got, s)
	}
	return got
}

// anyLost says whether a held lease is dead or past its deadline.
func (m *Member) anyLost() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for _, c := range m.held {
		if _, ok := c.live(now); !ok {
			return true
		}
	}
	return false
}

// settle drops the leases lost, applies the scope of what is left less
// the shards want gives other replicas (want nil: none), if that is a
// change, and then releases those shards: the replica stopped acting for
// them when apply returned.
func (m *Member) settle(ctx context.Context, apply func(Scope), want []string, f *roundFailures) {
	now := time.Now()
	m.mu.Lock()
	var lost, handoff []int
	keep := make([]*cell, 0, len(m.held))
	var release []*cell
	for s, c := range m.held {
		switch _, live := c.live(now); {
		case !live:
			delete(m.held, s)
			lost = append(lost, s)
		case want != nil && want[s] != m.opt.Name:
			// Still held, and renewed, until it is released: the
			// replica acts for it until apply returns.
			release = append(release, c)
			handoff = append(handoff, s)
		default:
			keep = append(keep, c)
		}
	}
	next := newScope(keep)
	changed := !next.same(m.applied)
	m.mu.Unlock()

	if len(lost) > 0 {
		sort.Ints(lost)
		m.log.Warn("shard leases lost: acting without them", zap.String("shards", Ranges(lost)), zap.Int("count", len(lost)))
		m.met.addLost(len(lost))
	}
	if changed && ctx.Err() == nil {
		apply(next)
		m.mu.Lock()
		m.applied = next
		m.mu.Unlock()
	}
	if ctx.Err() != nil {
		return // Handoff releases what is held
	}
	if len(release) > 0 {
		m.mu.Lock()
		for _, c := range release {
			delete(m.held, c.lease.Shard)
		}
		m.mu.Unlock()
		sort.Ints(handoff)
		for _, c := range release {
			l, _ := c.live(now)
			c.kill(now)
			m.releaseLease(ctx, l, f)
		}
		m.log.Info("shards handed off", zap.String("shards", Ranges(handoff)), zap.Int("count", len(handoff)))
		m.met.addMoves(0, len(handoff))
	}
	m.met.setOwned(len(keep))
}

// releaseLease releases l; one that was no longer the shard's ran out
// already, which is as good.
func (m *Member) releaseLease(ctx context.Context, l store.Lease, f *roundFailures) {
	cctx, cancel := context.WithTimeout(ctx, m.window())
	defer cancel()
	err := m.db.Release(cctx, l)
	switch {
	case err == nil || errors.Is(err, store.ErrFenced):
		f.release.ok()
	case ctx.Err() == nil:
		// It runs out at its TTL instead: nothing renews it.
		f.release.fail(err)
	}
}
