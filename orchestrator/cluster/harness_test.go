package cluster

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
)

// world is the replicas of one test and what they did, in order: every
// apply and every release, and the check that no two replicas' scopes
// ever own one shard at once.
type world struct {
	t    *testing.T
	wake chan struct{} // something happened: a round ended, a scope was applied

	mu       sync.Mutex
	replicas []*replica
	events   []event
}

type event struct {
	replica string
	release bool  // a Release call; else an apply
	shards  []int // the scope's shards, or the one released
	at      time.Time
}

func newWorld(t *testing.T) *world { return &world{t: t, wake: make(chan struct{}, 1)} }

func (w *world) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// until waits for cond, checked after each round and apply of any
// replica, failing the test after timeout.
func (w *world) until(timeout time.Duration, what string, cond func() bool) time.Duration {
	w.t.Helper()
	start := time.Now()
	limit := time.NewTimer(timeout)
	defer limit.Stop()
	for !cond() {
		select {
		case <-w.wake:
		case <-limit.C:
			w.t.Fatalf("after %v: still not %s", timeout, what)
		}
	}
	return time.Since(start)
}

// replica is one Member running in the test.
type replica struct {
	w      *world
	name   string
	m      *Member
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	scopes []Scope // every scope applied, in order
}

// recDB records a replica's releases in its world.
type recDB struct {
	DB
	r *replica
}

func (d recDB) Release(ctx context.Context, l store.Lease) error {
	d.r.w.record(event{replica: d.r.name, release: true, shards: []int{l.Shard}, at: time.Now()})
	return d.DB.Release(ctx, l)
}

func (w *world) record(e event) {
	w.mu.Lock()
	w.events = append(w.events, e)
	w.mu.Unlock()
}

// start runs a member named name on db.
func (w *world) start(name string, db DB, terms store.LeaseTerms, tick time.Duration) *replica {
	w.t.Helper()
	r := &replica{w: w, name: name, done: make(chan error, 1)}
	m, err := New(recDB{DB: db, r: r}, Options{Name: name, Addr: "http://" + name + ":7071", Terms: terms, Tick: tick, Log: testLog(w.t)})
	if err != nil {
		w.t.Fatal(err)
	}
	m.onRound = w.poke
	r.m = m
	w.mu.Lock()
	w.replicas = append(w.replicas, r)
	w.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- m.Run(ctx, r.apply) }()
	w.t.Cleanup(r.stop)
	return r
}

// apply is the replica's apply: it checks that no other replica's scope
// owns a shard of s now, and records s.
func (r *replica) apply(s Scope) {
	r.w.mu.Lock()
	others := slices.Clone(r.w.replicas)
	r.w.mu.Unlock()
	for _, o := range others {
		if o == r {
			continue
		}
		for _, os := range o.allScopes() {
			for _, shard := range s.Shards() {
				if os.Owns(shard) {
					r.w.t.Errorf("%s applies a scope with shard %d, which a scope of %s still owns", r.name, shard, o.name)
				}
			}
		}
	}
	r.mu.Lock()
	r.scopes = append(r.scopes, s)
	r.mu.Unlock()
	r.w.record(event{replica: r.name, shards: s.Shards(), at: time.Now()})
	r.w.poke()
}

func (r *replica) allScopes() []Scope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.scopes)
}

// scope is the replica's scope applied last.
func (r *replica) scope() Scope {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.scopes) == 0 {
		return Scope{}
	}
	return r.scopes[len(r.scopes)-1]
}

// owned is the shards the replica's last scope owns now.
func (r *replica) owned() []int {
	s := r.scope()
	var out []int
	for _, shard := range s.Shards() {
		if s.Owns(shard) {
			out = append(out, shard)
		}
	}
	return out
}

// stop ends the replica's Run, without a hand-off: as a kill, for the
// others.
func (r *replica) stop() {
	r.cancel()
	if err := <-r.done; err != nil {
		r.w.t.Errorf("%s: Run: %v", r.name, err)
	}
	r.done <- nil // for a second stop
}

// ready waits for the replica's first round.
func (r *replica) ready(timeout time.Duration) {
	r.w.t.Helper()
	select {
	case <-r.m.Ready():
	case <-time.After(timeout):
		r.w.t.Fatalf("%s not ready after %v", r.name, timeout)
	}
}

// split is the shards assign gives each of names, out of n.
func split(n int, names ...string) map[string][]int {
	out := map[string][]int{}
	for s, name := range assign(names, n) {
		out[name] = append(out[name], s)
	}
	return out
}

// converged says whether each replica's scope owns exactly the shards
// the rendezvous gives its name among all of theirs.
func converged(n int, rs ...*replica) bool {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.name
	}
	want := split(n, names...)
	for _, r := range rs {
		if !slices.Equal(r.owned(), want[r.name]) {
			return false
		}
	}
	return true
}
