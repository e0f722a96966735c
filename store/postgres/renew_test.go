package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/store/postgres/pipe"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/postgres/lease"
)

// A fenced transaction keeps its shards' rows locked until COMMIT, and a
// group commit checks its callers' fences one statement after another, in
// no order; the holder's renewal of all its leases is one statement. Were
// the renewal to wait for the fences' locks, the two would wait for each
// other (shard A fenced, the renewal taking B then waiting for A, the next
// fence waiting for B) until PostgreSQL's deadlock_timeout broke the cycle
// by failing one: a renewal lost, or a group commit failed, every second
// or so under load. The renewal does not wait; an acquire still does.
func TestRenewalDoesNotWaitForFences(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	terms := store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second}
	l3, err := a.Acquire(ctx, "a", 3, terms)
	if err != nil {
		t.Fatal(err)
	}
	l5, err := a.Acquire(ctx, "a", 5, terms)
	if err != nil {
		t.Fatal(err)
	}
	begin := func() *pipe.Tx {
		t.Helper()
		conn, err := a.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Release)
		ptx := pipe.Begin(conn, `BEGIN`)
		t.Cleanup(func() { ptx.Rollback(ctx) })
		return ptx
	}
	ptx := begin()
	x := newTx(ctx, ptx, a)
	fence := func(l store.Lease) {
		t.Helper()
		if err := x.AppendHistory(keyIn(a, l.Shard), store.HistoryEntry{Event: "pass", By: "a"}); err != nil {
			t.Fatal(err)
		}
		f, err := lease.NewFence([]store.Lease{l}, a.shards)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.checkFence(f); err != nil {
			t.Fatal(err)
		}
	}
	fence(l5) // shard 5's row locked until COMMIT

	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	renewed, lost, err := a.RenewMany(rctx, []store.Lease{l3, l5}, terms)
	if err != nil || len(renewed) != 2 || len(lost) != 0 {
		t.Fatalf("the renewal beside a fenced transaction: renewed %v, lost %v, %v; want both renewed at once", renewed, lost, err)
	}
	fence(l3)
	if err := ptx.Commit(ctx); err != nil {
		t.Fatalf("the fenced transaction after the renewal: %v", err)
	}

	// An acquire still waits for a fenced COMMIT in flight.
	ptx = begin()
	x = newTx(ctx, ptx, a)
	fence(l5)
	if err := a.Release(ctx, l5); err != nil {
		t.Fatalf("release beside the holder's own fenced transaction: %v", err)
	}
	acquired := make(chan error, 1)
	go func() { _, err := b.Acquire(ctx, "b", 5, terms); acquired <- err }()
	select {
	case err := <-acquired:
		t.Fatalf("the acquire did not wait for the fenced transaction: %v", err)
	case <-time.After(300 * time.Millisecond): // it waits: nothing tells of a wait but its length
	}
	if err := ptx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-acquired; err != nil {
		t.Fatalf("the acquire once the fenced transaction committed: %v", err)
	}
}
