package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batonhq/baton/store"
)

// short are the terms of most tests: leases of 2 s, renewed every 100 ms.
var (
	short     = store.LeaseTerms{TTL: 2 * time.Second, Margin: 500 * time.Millisecond}
	shortTick = 100 * time.Millisecond
)

// A lone replica takes every shard in its first round, and applies them
// once, before it says it is ready.
func TestLoneMemberTakesEveryShard(t *testing.T) {
	db := openDBs(t, 1)[0]
	w := newWorld(t)
	reg := prometheus.NewRegistry()
	r := &replica{w: w, name: "a", done: make(chan error, 1)}
	m, err := New(recDB{DB: db, r: r}, Options{Name: "a", Addr: "http://a:7071", Terms: short, Tick: shortTick, Log: testLog(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	m.onRound = w.poke
	r.m = m
	w.replicas = []*replica{r}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	start := time.Now()
	go func() { r.done <- m.Run(ctx, r.apply) }()
	t.Cleanup(r.stop)
	r.ready(5 * time.Second)
	t.Logf("ready, with every shard, %v after Run", time.Since(start))

	n := db.Shards()
	if got := r.owned(); len(got) != n {
		t.Fatalf("ready with %d shards owned, want all %d", len(got), n)
	}
	if len(r.allScopes()) != 1 {
		t.Errorf("%d applies before ready, want 1", len(r.allScopes()))
	}
	for _, l := range r.scope().Leases() {
		if l.Owner != m.ID() || l.Epoch != 1 {
			t.Fatalf("lease %v: want epoch 1 of %s", l, m.ID())
		}
	}
	if got := testutil.ToFloat64(m.met.owned); got != float64(n) {
		t.Errorf("baton_cluster_shards_owned %v, want %d", got, n)
	}
	if got := testutil.ToFloat64(m.met.acquired); got != float64(n) {
		t.Errorf("baton_cluster_shard_moves_total{direction=acquired} %v, want %d", got, n)
	}
	if got := testutil.ToFloat64(m.met.live); got != 1 {
		t.Errorf("baton_cluster_replicas_live %v, want 1", got)
	}
	if _, err := New(db, Options{Name: "b", Terms: short, Registerer: reg}); err == nil {
		t.Error("a second member on one registry: no error")
	}

	// The leases are renewed in place: a deadline moves on, the scope
	// stays the one applied.
	l0, _ := r.scope().Lease(0)
	w.until(3*short.TTL, "a renewal of shard 0", func() bool {
		l, ok := r.scope().Lease(0)
		return ok && l.Deadline.After(l0.Deadline)
	})
	if len(r.allScopes()) != 1 {
		t.Errorf("%d applies, want 1: renewals change no scope", len(r.allScopes()))
	}
	if got := testutil.ToFloat64(m.met.lost); got != 0 {
		t.Errorf("baton_cluster_leases_lost_total %v, want 0", got)
	}
}

// A second replica joins: the first hands it the shards the rendezvous
// gives it, each applying a scope without them before releasing them,
// and the two end with disjoint sets that cover every shard.
func TestJoinSplitsTheShards(t *testing.T) {
	dbs := openDBs(t, 2)
	n := dbs[0].Shards()
	w := newWorld(t)
	a := w.start("a", dbs[0], short, shortTick)
	a.ready(5 * time.Second)
	if len(a.owned()) != n {
		t.Fatalf("a alone owns %d shards, want %d", len(a.owned()), n)
	}
	b := w.start("b", dbs[1], short, shortTick)
	took := w.until(10*time.Second, "a and b converged", func() bool { return converged(n, a, b) })
	t.Logf("converged %v after b started: a %d shards, b %d", took, len(a.owned()), len(b.owned()))

	union := append(a.owned(), b.owned()...)
	slices.Sort(union)
	if len(slices.Compact(union)) != n || len(union) != n {
		t.Fatalf("a's and b's shards are not a partition of the %d", n)
	}
	for _, r := range []*replica{a, b} {
		if k := len(r.owned()); k < n/2-n/8 || k > n/2+n/8 {
			t.Errorf("%s owns %d of %d shards: want about half", r.name, k, n)
		}
	}

	// Every release of a's came after an apply of a's without its shard.
	w.mu.Lock()
	events := slices.Clone(w.events)
	w.mu.Unlock()
	released := 0
	var last []int // a's last applied scope
	for _, e := range events {
		if e.replica != "a" {
			continue
		}
		if !e.release {
			last = e.shards
			continue
		}
		released++
		if slices.Contains(last, e.shards[0]) {
			t.Errorf("a released shard %d while its applied scope still had it", e.shards[0])
		}
	}
	if want := len(b.owned()); released != want {
		t.Errorf("a released %d shards, want %d (b's)", released, want)
	}
	// a acted under the same leases all along for the shards it kept.
	for _, s := range a.owned() {
		if l, _ := a.scope().Lease(s); l.Epoch != 1 {
			t.Errorf("a's shard %d at epoch %d, want 1: it was never lost", s, l.Epoch)
		}
	}
}

// start2 runs a and b until they converged.
func start2(t *testing.T, terms store.LeaseTerms) (w *world, a, b *replica, n int) {
	dbs := openDBs(t, 2)
	n = dbs[0].Shards()
	w = newWorld(t)
	a = w.start("a", dbs[0], terms, shortTick)
	a.ready(5 * time.Second)
	b = w.start("b", dbs[1], terms, shortTick)
	w.until(10*time.Second, "a and b converged", func() bool { return converged(n, a, b) })
	return w, a, b, n
}

// A replica that hands off at SIGTERM gives its shards to the other at
// once: well within a TTL, which is how long a kill would take.
func TestHandoffMovesShardsAtOnce(t *testing.T) {
	long := store.LeaseTerms{TTL: 5 * time.Second, Margin: time.Second}
	w, a, b, n := start2(t, long)
	a.stop() // its orchestrator stopped acting
	start := time.Now()
	if err := a.m.Handoff(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("Handoff took %v", time.Since(start))
	took := w.until(long.TTL, "b owning every shard", func() bool { return len(b.owned()) == n })
	t.Logf("b owns every shard %v after a's hand-off (tick %v, TTL %v)", took, shortTick, long.TTL)
	// A few ticks (a loaded machine), not the TTL a kill would take.
	if limit := long.TTL / 5; time.Since(start) > limit {
		t.Errorf("the hand-off took %v: want a tick or two, well under the TTL (%v)", time.Since(start), long.TTL)
	}
	for _, s := range a.allScopes() {
		if len(s.Leases()) != 0 {
			t.Errorf("a scope of a's still has %d live leases after the hand-off", len(s.Leases()))
		}
	}
	if err := a.m.Run(context.Background(), a.apply); err == nil {
		t.Error("Run after Handoff: no error")
	}
}

// A replica stopped without a hand-off (a kill) keeps its shards until
// its leases run out; then the other takes them, within TTL + 2 s.
func TestKilledMemberShardsTakenAfterTTL(t *testing.T) {
	w, a, b, n := start2(t, short)
	a.stop()
	start := time.Now()
	took := w.until(short.TTL+2*time.Second, "b owning every shard", func() bool { return len(b.owned()) == n })
	t.Logf("b owns every shard %v after a stopped (TTL %v)", took, short.TTL)
	// a's last renewal went out at most a tick (and the renewal's time)
	// before it stopped: its leases last a TTL from there.
	if min := short.TTL - 3*shortTick; time.Since(start) < min {
		t.Errorf("b took a's shards %v after a stopped: before a's leases ran out (%v)", time.Since(start), min)
	}
}

// A replica whose database stops answering stops acting for its shards at
// their local deadline, by a timer well before the next tick, and takes
// them again once the database answers.
func TestStalledDatabaseLosesTheScopeAtTheDeadline(t *testing.T) {
	db := &stallDB{DB: openDBs(t, 1)[0]}
	n := db.Shards()
	w := newWorld(t)
	tick := time.Second // longer than the time the loss may take
	a := w.start("a", db, short, tick)
	a.ready(5 * time.Second)
	before := a.scope()
	l0, _ := before.Lease(0)
	w.until(3*tick, "a renewal", func() bool { // the deadlines are one after it
		l, ok := before.Lease(0)
		return ok && l.Deadline.After(l0.Deadline)
	})
	epochs := map[int]int64{}
	for _, l := range before.Leases() {
		epochs[l.Shard] = l.Epoch
	}
	db.stalled.Store(true)
	w.until(short.TTL, "a scope without any shard applied", func() bool { return len(a.scope().Shards()) == 0 })
	applied := time.Now()
	var last time.Time
	for _, s := range before.Shards() {
		if before.Owns(s) {
			t.Errorf("the scope of before the stall still owns shard %d", s)
		}
		l, _ := before.byShard[s].live(applied)
		if l.Deadline.After(last) {
			last = l.Deadline
		}
	}
	if late := applied.Sub(last); late < 0 || late > 300*time.Millisecond {
		t.Errorf("the empty scope came %v after the last local deadline: want at it, not a tick (%v) later", late, tick)
	}
	t.Logf("the empty scope came %v after the last deadline", applied.Sub(last))

	db.stalled.Store(false)
	w.until(short.TTL+3*tick, "every shard owned again", func() bool { return len(a.owned()) == n })
	for _, l := range a.scope().Leases() {
		if l.Epoch <= epochs[l.Shard] {
			t.Errorf("shard %d taken again at epoch %d, want more than %d", l.Shard, l.Epoch, epochs[l.Shard])
		}
	}
	if got := len(a.allScopes()); got > 4 {
		t.Errorf("%d applies for one loss and one recovery", got)
	}
}

// Owner answers who holds each shard, on both replicas, by their reads.
func TestOwner(t *testing.T) {
	w, a, b, n := start2(t, short)
	want := assign([]string{"a", "b"}, n)
	ids := map[string]*replica{"a": a, "b": b}
	right := func(r *replica) bool {
		for s := range n {
			id, addr, ok := r.m.Owner(s)
			o := ids[want[s]]
			if !ok || id != o.m.ID() || addr != "http://"+o.name+":7071" {
				return false
			}
		}
		return true
	}
	w.until(5*time.Second, "both replicas' Owner right for every shard", func() bool { return right(a) && right(b) })
	for _, s := range []int{-1, n} {
		if _, _, ok := a.m.Owner(s); ok {
			t.Errorf("Owner(%d): ok", s)
		}
	}
}
