package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// The fencing property test (SCALEOUT.md §4.3 and §8.1, made permanent):
// three replicas in one process share 16 shards with short leases. Each
// keeps its leases (acquire, renew) and runs writers that increment a
// per-shard counter under a lease, in fenced transactions, logging every
// increment to the shard's history with the epoch and owner that wrote
// it. One replica is paused past its leases: it stops renewing but its
// writers go on with the old leases, ignoring their deadline (a zombie
// whose clock is wrong). Another is killed: it stops, leaving its leases
// to run out. Then:
//   - in commit order, no shard's epoch ever goes back, one owner per
//     epoch (never two owners at once; no A, B, A);
//   - no increment is lost or doubled (the counter runs 1, 2, 3...);
//   - porcupine finds each shard's counter linearizable, from what the
//     callers saw (fenced calls changed nothing);
//   - the zombie's writes were refused, and the killed replica's shards
//     went to the others.

type fenceReplica struct {
	id     string
	db     *DB
	mu     sync.Mutex
	leases map[int]store.Lease
	// zombie: renewals stop, writers ignore the deadline; dead: all stops.
	zombie, dead atomic.Bool
}

func (r *fenceReplica) held() []store.Lease {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]store.Lease, 0, len(r.leases))
	for _, l := range r.leases {
		out = append(out, l)
	}
	return out
}

type incrIn struct{ shard int }

type incrOut struct {
	ok       bool // committed; otherwise fenced, nothing written
	from, to int
}

type fenceOp struct {
	porcupine.Operation
	zombie bool // the writer's replica was a zombie when it called
}

func TestFencingProperty(t *testing.T) {
	const (
		nReplicas = 3
		shards    = 16
		writers   = 2
		run       = 6 * time.Second
	)
	terms := store.LeaseTerms{TTL: 600 * time.Millisecond, Margin: 200 * time.Millisecond}
	dbs := replicas(t, nReplicas)
	rs := make([]*fenceReplica, nReplicas)
	for i := range rs {
		rs[i] = &fenceReplica{id: fmt.Sprint("r", i), db: dbs[i], leases: map[int]store.Lease{}}
	}
	keys := make([]store.ThreadKey, shards)
	for s := range keys {
		keys[s] = keyIn(dbs[0], s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	start := time.Now()
	stamp := func() int64 { return int64(time.Since(start)) }

	var mu sync.Mutex
	var ops []fenceOp
	var unexpected []error
	fail := func(err error) {
		mu.Lock()
		unexpected = append(unexpected, err)
		mu.Unlock()
	}

	var wg sync.WaitGroup
	for _, r := range rs {
		// The lease keeper: renew what it holds, take free shards up to
		// its share.
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(terms.TTL / 5)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if r.dead.Load() {
					return
				}
				if r.zombie.Load() {
					continue
				}
				for _, l := range r.held() {
					nl, err := r.db.Renew(ctx, l, terms)
					r.mu.Lock()
					switch {
					case err == nil:
						r.leases[l.Shard] = nl
					case errors.Is(err, store.ErrFenced):
						delete(r.leases, l.Shard)
					case ctx.Err() == nil:
						fail(err)
					}
					r.mu.Unlock()
				}
				for _, s := range rand.Perm(shards) {
					if len(r.held()) >= shards/2 {
						break
					}
					r.mu.Lock()
					_, mine := r.leases[s]
					r.mu.Unlock()
					if mine {
						continue
					}
					l, err := r.db.Acquire(ctx, r.id, s, terms)
					switch {
					case err == nil:
						r.mu.Lock()
						r.leases[s] = l
						r.mu.Unlock()
					case !errors.Is(err, store.ErrLeaseHeld) && ctx.Err() == nil:
						fail(err)
					}
				}
			}
		}()
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && !r.dead.Load() {
					held := r.held()
					zombie := r.zombie.Load()
					var live []store.Lease
					for _, l := range held {
						if zombie || l.Live(time.Now()) {
							live = append(live, l)
						}
					}
					if len(live) == 0 {
						time.Sleep(10 * time.Millisecond) // waiting for the keeper
						continue
					}
					l := live[rand.IntN(len(live))]
					k := keys[l.Shard]
					var out incrOut
					call := stamp()
					err := r.db.UpdateFenced(context.Background(), []store.Lease{l}, func(tx store.Tx) error {
						th, err := tx.Thread(k)
						n := 0
						switch {
						case errors.Is(err, store.ErrNotFound):
							th = store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Idle}}
						case err != nil:
							return err
						default:
							if n, err = strconv.Atoi(th.LastCause); err != nil {
								return err
							}
						}
						th.LastCause = strconv.Itoa(n + 1)
						out = incrOut{ok: true, from: n, to: n + 1}
						if err := tx.PutThread(th); err != nil {
							return err
						}
						return tx.AppendHistory(k, store.HistoryEntry{
							Event: "incr", By: r.id, Metadata: fmt.Sprintf("%d %d", l.Epoch, n+1),
						})
					})
					ret := stamp()
					switch {
					case err == nil:
					case errors.Is(err, store.ErrFenced):
						out = incrOut{}
					default:
						fail(err)
						return
					}
					mu.Lock()
					ops = append(ops, fenceOp{Operation: porcupine.Operation{
						ClientId: 10*rsIndex(rs, r) + w, Input: incrIn{l.Shard}, Call: call, Output: out, Return: ret,
					}, zombie: zombie})
					mu.Unlock()
				}
			}()
		}
	}

	// The faults: r1 paused past its leases, then back; r2 killed.
	zombieFrom, zombieTo := 1500*time.Millisecond, 1500*time.Millisecond+3*terms.TTL
	time.Sleep(zombieFrom) // the schedule of the faults is the test
	rs[1].zombie.Store(true)
	time.Sleep(zombieTo - zombieFrom)
	rs[1].zombie.Store(false)
	time.Sleep(500 * time.Millisecond)
	rs[2].dead.Store(true)
	wg.Wait()

	for _, err := range unexpected {
		t.Errorf("unexpected: %v", err)
	}

	// Commit order, per shard: the history's ids.
	committed, fencedZombie, okZombie := 0, 0, 0
	okByShard := make([]int, shards)
	var history []porcupine.Operation
	for _, op := range ops {
		history = append(history, op.Operation)
		out := op.Output.(incrOut)
		if out.ok {
			committed++
			okByShard[op.Input.(incrIn).shard]++
		}
		if op.zombie {
			if out.ok {
				okZombie++
			} else {
				fencedZombie++
			}
		}
	}
	for s, k := range keys {
		var h []store.HistoryEntry
		if err := dbs[0].View(func(tx store.ReadTx) error {
			var err error
			h, err = tx.History(k)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(h) != okByShard[s] {
			t.Errorf("shard %d: %d increments in the history, %d calls committed", s, len(h), okByShard[s])
		}
		var lastEpoch int64
		owners := map[int64]string{}
		for i, e := range h {
			var epoch int64
			var n int
			if _, err := fmt.Sscanf(e.Metadata, "%d %d", &epoch, &n); err != nil {
				t.Fatalf("shard %d entry %d: %q: %v", s, i, e.Metadata, err)
			}
			if epoch < lastEpoch {
				t.Errorf("shard %d entry %d: epoch %d (%s) committed after epoch %d", s, i, epoch, e.By, lastEpoch)
			}
			if o, seen := owners[epoch]; seen && o != e.By {
				t.Errorf("shard %d epoch %d: written by %s and %s", s, epoch, o, e.By)
			}
			owners[epoch], lastEpoch = e.By, epoch
			if n != i+1 {
				t.Errorf("shard %d entry %d: counter %d, want %d (an increment lost or doubled)", s, i, n, i+1)
			}
		}
	}

	model := porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[int][]porcupine.Operation{}
			for _, op := range h {
				s := op.Input.(incrIn).shard
				by[s] = append(by[s], op)
			}
			var out [][]porcupine.Operation
			for _, p := range by {
				out = append(out, p)
			}
			return out
		},
		Init: func() any { return 0 },
		Step: func(state, _, output any) (bool, any) {
			out := output.(incrOut)
			if !out.ok {
				return true, state // fenced: nothing written
			}
			return state.(int) == out.from, out.to
		},
	}
	res := porcupine.CheckOperationsTimeout(model, history, 20*time.Second)
	if res != porcupine.Ok {
		t.Errorf("porcupine: the counters' history is %s, want Ok", res)
	}

	if fencedZombie == 0 {
		t.Errorf("the zombie's writes: none refused (%d committed while its leases ran out)", okZombie)
	}
	leases, err := dbs[0].Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	taken := 0
	for _, l := range leases[:shards] {
		if l.Owner != "" && l.Owner != "r2" {
			taken++
		}
	}
	t.Logf("%d calls: %d committed; the zombie's %d refused, %d committed before its leases ran out; %d of %d shards held by r0 and r1 at the end; porcupine %s",
		len(ops), committed, fencedZombie, okZombie, taken, shards, res)
	if committed == 0 || taken < shards/2 {
		t.Errorf("too little happened: %d commits, %d shards left to r0 and r1", committed, taken)
	}
}

func rsIndex(rs []*fenceReplica, r *fenceReplica) int {
	for i, x := range rs {
		if x == r {
			return i
		}
	}
	return -1
}
