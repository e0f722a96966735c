package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/postgres/lease"
	"github.com/batonhq/baton/store/postgres/pipe"
)

// replicas opens n stores on one fresh schema, each with its own pool
// and group commit, as n replicas of Baton would; closed at the end.
func replicas(tb testing.TB, n int) []*DB {
	tb.Helper()
	dsn := testDSN(tb)
	schema := schemaFor(tb.TempDir())
	dropAtEnd(tb, schema)
	dbs := make([]*DB, n)
	for i := range dbs {
		db, err := Open(context.Background(), dsn, Options{Schema: schema, MaxConns: 4})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = db.Close() })
		dbs[i] = db
	}
	return dbs
}

// keyIn is a thread of shard s.
func keyIn(db *DB, s int) store.ThreadKey { return keyIn2(db, "100", s) }

// keyIn2 is a thread of page's in shard s.
func keyIn2(db *DB, page string, s int) store.ThreadKey {
	for i := 0; ; i++ {
		k := store.ThreadKey{Page: page, PSID: fmt.Sprint(i)}
		if db.ShardOf(k) == s {
			return k
		}
	}
}

// waitAcquire acquires shard once the lease on it ran out, polling: the
// database's clock decides when, not the test's.
func waitAcquire(t *testing.T, db *DB, replica string, shard int, terms store.LeaseTerms) store.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		l, err := db.Acquire(ctx, replica, shard, terms)
		if err == nil {
			return l
		}
		if !errors.Is(err, store.ErrLeaseHeld) || ctx.Err() != nil {
			t.Fatalf("%s acquiring shard %d: %v", replica, shard, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the database's clock
	}
}

func TestLeaseLifecycle(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	short := store.LeaseTerms{TTL: 300 * time.Millisecond, Margin: 100 * time.Millisecond}
	long := store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second}

	before := time.Now()
	la, err := a.Acquire(ctx, "a", 7, short)
	if err != nil {
		t.Fatal(err)
	}
	if la.Epoch != 1 || la.Owner != "a" || la.Shard != 7 {
		t.Fatalf("first lease %+v, want shard 7 epoch 1 of a", la)
	}
	after := time.Now()
	if want := short.TTL - short.Margin; la.Deadline.Before(before.Add(want)) || la.Deadline.After(after.Add(want)) {
		t.Errorf("local deadline %v after the call, want TTL - margin = %v after it was sent", la.Deadline.Sub(before), want)
	}
	if !la.Live(time.Now()) || la.Live(la.Deadline) {
		t.Errorf("Live around the deadline is wrong")
	}

	// Held: nobody acquires it, its holder neither (it renews).
	for _, db := range []*DB{a, b} {
		if _, err := db.Acquire(ctx, "b", 7, short); !errors.Is(err, store.ErrLeaseHeld) {
			t.Fatalf("acquire of a held shard: %v, want ErrLeaseHeld", err)
		}
	}
	if _, err := a.Acquire(ctx, "a", 7, short); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("acquire of its own held shard: %v, want ErrLeaseHeld", err)
	}
	renewed, err := a.Renew(ctx, la, short)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Epoch != la.Epoch || !renewed.Deadline.After(la.Deadline) {
		t.Errorf("renewal %+v of %+v: same epoch, later deadline wanted", renewed, la)
	}

	// Expired, then stolen: the new owner has the next epoch; the old one
	// can neither renew nor release.
	lb := waitAcquire(t, b, "b", 7, long)
	if lb.Epoch != 2 {
		t.Fatalf("stolen lease epoch %d, want 2", lb.Epoch)
	}
	if _, err := a.Renew(ctx, renewed, short); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("renewal by the old owner: %v, want ErrFenced", err)
	}
	if err := a.Release(ctx, renewed); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("release by the old owner: %v, want ErrFenced", err)
	}

	// Expired and not stolen: even the owner cannot renew; it acquires
	// again, at a new epoch.
	lc, err := a.Acquire(ctx, "a", 8, short)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(short.TTL + 50*time.Millisecond) // letting the lease run out is the test
	if _, err := a.Renew(ctx, lc, short); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("renewal after expiry: %v, want ErrFenced", err)
	}
	if lc2, err := a.Acquire(ctx, "a", 8, short); err != nil || lc2.Epoch != lc.Epoch+1 {
		t.Fatalf("re-acquire after expiry: %+v %v, want epoch %d", lc2, err, lc.Epoch+1)
	}

	// A release hands the shard over at once.
	if err := b.Release(ctx, lb); err != nil {
		t.Fatal(err)
	}
	ld, err := a.Acquire(ctx, "a", 7, long)
	if err != nil || ld.Epoch != 3 {
		t.Fatalf("acquire after a release: %+v %v, want epoch 3", ld, err)
	}

	leases, err := b.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 256 {
		t.Fatalf("%d lease rows, want 256", len(leases))
	}
	if l := leases[7]; l.Shard != 7 || l.Owner != "a" || l.Epoch != 3 || !l.Held || l.ExpiresAt.Before(time.Now().Add(50*time.Second)) {
		t.Errorf("lease row 7 %+v, want a's at epoch 3, held for about a minute", l)
	}
	if l := leases[0]; l.Owner != "" || l.Epoch != 0 || l.Held || !l.ExpiresAt.IsZero() {
		t.Errorf("lease row 0 %+v, want never held", l)
	}

	// Bad arguments are errors, not statements.
	for _, err := range []error{
		func() error { _, err := a.Acquire(ctx, "a", 256, short); return err }(),
		func() error { _, err := a.Acquire(ctx, "", 1, short); return err }(),
		func() error {
			_, err := a.Acquire(ctx, "a", 1, store.LeaseTerms{TTL: time.Second, Margin: time.Second})
			return err
		}(),
		a.UpdateFenced(ctx, nil, func(store.Tx) error { return nil }),
		a.UpdateFenced(ctx, []store.Lease{ld, ld}, func(store.Tx) error { return nil }),
	} {
		if err == nil || errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrFenced) {
			t.Errorf("bad arguments: %v, want a plain error", err)
		}
	}
}

func TestHeartbeats(t *testing.T) {
	db := replicas(t, 1)[0]
	ctx := context.Background()
	if err := db.Heartbeat(ctx, "r1", "http://10.0.0.1:7071", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.Heartbeat(ctx, "r2", "http://10.0.0.2:7071", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // r2's heartbeat must run out
	rs, err := db.Replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ID != "r1" || !rs[0].Live || rs[0].Addr != "http://10.0.0.1:7071" || rs[1].ID != "r2" || rs[1].Live {
		t.Fatalf("replicas %+v, want r1 live and r2 not", rs)
	}
}

// Fenced writes: under a held lease they commit; outside the leases,
// under a stolen or a run-out lease, they fail and write nothing, and the
// group commit they shared commits the rest.
func TestUpdateFenced(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	long := store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second}
	short := store.LeaseTerms{TTL: 300 * time.Millisecond, Margin: 100 * time.Millisecond}

	l1, err := a.Acquire(ctx, "a", 1, long)
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := a.Acquire(ctx, "a", 2, short)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := a.Acquire(ctx, "a", 3, short)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(short.TTL + 50*time.Millisecond) // letting the leases run out is the test
	if _, err := b.Acquire(ctx, "b", 2, long); err != nil {
		t.Fatal(err)
	}

	write := func(k store.ThreadKey) func(store.Tx) error {
		return func(tx store.Tx) error {
			return tx.AppendHistory(k, store.HistoryEntry{Event: "pass", Metadata: "fenced"})
		}
	}
	tests := []struct {
		name    string
		leases  []store.Lease
		shard   int
		fenced  bool // ErrFenced; otherwise any failure
		success bool
	}{
		{"held lease", []store.Lease{l1}, 1, false, true},
		{"a shard outside the leases (NotOwned)", []store.Lease{l1}, 4, true, false},
		{"stolen lease", []store.Lease{stolen}, 2, true, false},
		{"run-out lease, not taken", []store.Lease{expired}, 3, true, false},
		{"one lease of two stolen", []store.Lease{l1, stolen}, 1, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := keyIn2(a, tt.name, tt.shard) // a thread of its own
			other := store.ThreadKey{Page: "200", PSID: tt.name}
			// A plain write in the same group commit, when the group forms.
			var wg sync.WaitGroup
			wg.Add(1)
			var plainErr error
			go func() { defer wg.Done(); plainErr = a.Update(ctx, write(other)) }()
			err := a.UpdateFenced(ctx, tt.leases, write(k))
			wg.Wait()
			switch {
			case tt.success && err != nil:
				t.Fatalf("fenced write: %v", err)
			case !tt.success && err == nil:
				t.Fatal("fenced write committed")
			case tt.fenced && !errors.Is(err, store.ErrFenced):
				t.Fatalf("fenced write: %v, want ErrFenced", err)
			case !tt.fenced && errors.Is(err, store.ErrFenced):
				t.Fatalf("fenced write: %v, want another error", err)
			}
			t.Log(err)
			if plainErr != nil {
				t.Fatalf("the plain write beside it: %v", plainErr)
			}
			if n := historyLen(t, b, k); n != map[bool]int{true: 1, false: 0}[tt.success] {
				t.Errorf("%d entries written under the lease", n)
			}
			if n := historyLen(t, b, other); n != 1 {
				t.Errorf("%d entries of the plain write", n)
			}
		})
	}
}

func historyLen(t *testing.T, db *DB, k store.ThreadKey) int {
	t.Helper()
	var n int
	if err := db.View(func(tx store.ReadTx) error {
		h, err := tx.History(k)
		n = len(h)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A paused owner: its transaction is in flight (its function runs) when
// its lease runs out and another replica takes the shard. However long it
// believes it still holds the lease, its commit fails with ErrFenced and
// nothing of it is written; the new owner's is.
func TestPausedOwnerCannotCommit(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	terms := store.LeaseTerms{TTL: 400 * time.Millisecond, Margin: 100 * time.Millisecond}
	la, err := a.Acquire(ctx, "a", 5, terms)
	if err != nil {
		t.Fatal(err)
	}
	k := keyIn(a, 5)
	paused, resume := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.UpdateFenced(ctx, []store.Lease{la}, func(tx store.Tx) error {
			if err := tx.AppendHistory(k, store.HistoryEntry{Event: "pass", By: "a"}); err != nil {
				return err
			}
			select {
			case <-paused:
			default:
				close(paused)
			}
			<-resume // the pause, mid-transaction
			return nil
		})
	}()
	<-paused
	lb := waitAcquire(t, b, "b", 5, terms)
	if lb.Epoch != la.Epoch+1 {
		t.Fatalf("takeover epoch %d, want %d", lb.Epoch, la.Epoch+1)
	}
	if err := b.UpdateFenced(ctx, []store.Lease{lb}, func(tx store.Tx) error {
		return tx.AppendHistory(k, store.HistoryEntry{Event: "pass", By: "b"})
	}); err != nil {
		t.Fatalf("the new owner's write: %v", err)
	}
	close(resume)
	if err := <-done; !errors.Is(err, store.ErrFenced) {
		t.Fatalf("the paused owner's commit: %v, want ErrFenced", err)
	}
	var h []store.HistoryEntry
	if err := b.View(func(tx store.ReadTx) error { h, err = tx.History(k); return err }); err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].By != "b" {
		t.Fatalf("history %+v, want only the new owner's entry", h)
	}
}

// Two replicas race for all 256 shards: each shard is won once, at epoch
// 1; when one hands all its shards over, the other wins each at epoch 2.
func TestLeaseRace(t *testing.T) {
	dbs := replicas(t, 2)
	ctx := context.Background()
	terms := store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second}
	won := make([][]store.Lease, len(dbs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, db := range dbs {
		for g := range 4 { // several sweepers per replica, in different orders
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range db.Shards() {
					s := (j*(2*g+1) + 64*g) % db.Shards()
					l, err := db.Acquire(ctx, fmt.Sprint("r", i), s, terms)
					if errors.Is(err, store.ErrLeaseHeld) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					won[i] = append(won[i], l)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	owner := map[int]store.Lease{}
	for _, ls := range won {
		for _, l := range ls {
			if prev, twice := owner[l.Shard]; twice {
				t.Fatalf("shard %d won twice: %v and %v", l.Shard, prev, l)
			}
			if l.Epoch != 1 {
				t.Errorf("%v: want epoch 1", l)
			}
			owner[l.Shard] = l
		}
	}
	if len(owner) != 256 {
		t.Fatalf("%d shards won, want 256", len(owner))
	}
	t.Logf("r0 won %d shards, r1 %d", len(won[0]), len(won[1]))

	// r0 hands its shards to r1: each at the next epoch.
	for _, l := range won[0] {
		if err := dbs[0].Release(ctx, l); err != nil {
			t.Fatal(err)
		}
		l2, err := dbs[1].Acquire(ctx, "r1", l.Shard, terms)
		if err != nil || l2.Epoch != 2 {
			t.Fatalf("hand-off of %v: %+v %v, want epoch 2", l, l2, err)
		}
	}
	leases, err := dbs[0].Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if l.Owner != "r1" || !l.Held || l.Epoch != owner[l.Shard].Epoch+map[bool]int64{true: 1, false: 0}[owner[l.Shard].Owner == "r0"] {
			t.Errorf("lease row %+v after the hand-off", l)
		}
	}
}

// A holder frozen between its fence check and COMMIT holds its shard's
// row locked, so a takeover waits for it, but only for lease.IdleBound: then
// the server ends the frozen session, its transaction rolls back, and the
// new owner takes the shard.
func TestFrozenHolderDelaysTakeoverBoundedly(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	terms := store.LeaseTerms{TTL: 200 * time.Millisecond, Margin: 50 * time.Millisecond}
	la, err := a.Acquire(ctx, "a", 9, terms)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release() // the server ended the session: the pool closes it
	ptx := pipe.Begin(conn, "BEGIN")
	defer ptx.Rollback(ctx)
	x := newTx(ctx, ptx, a)
	if err := x.AppendHistory(keyIn(a, 9), store.HistoryEntry{Event: "pass", By: "a"}); err != nil {
		t.Fatal(err)
	}
	f, err := lease.NewFence([]store.Lease{la}, a.shards)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.checkFence(f); err != nil {
		t.Fatal(err)
	}
	// Frozen: nothing more is sent on ptx.
	frozen := time.Now()
	lb := waitAcquire(t, b, "b", 9, terms)
	took := time.Since(frozen)
	if lb.Epoch != la.Epoch+1 {
		t.Fatalf("takeover epoch %d, want %d", lb.Epoch, la.Epoch+1)
	}
	if took < lease.IdleBound-100*time.Millisecond || took > lease.IdleBound+2*time.Second {
		t.Errorf("the takeover took %v after the freeze, want about lease.IdleBound (%v): the row stays locked until then", took, lease.IdleBound)
	}
	if err := ptx.Commit(ctx); err == nil {
		t.Fatal("the frozen transaction committed after the takeover")
	}
	if n := historyLen(t, b, keyIn(a, 9)); n != 0 {
		t.Fatalf("%d entries of the frozen transaction written", n)
	}
}

// RenewMany renews, in one statement, the leases still the replica's and
// reports the others lost, each in the order given.
func TestRenewMany(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	short := store.LeaseTerms{TTL: 300 * time.Millisecond, Margin: 100 * time.Millisecond}
	long := store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second}
	acquire := func(shard int, terms store.LeaseTerms) store.Lease {
		t.Helper()
		l, err := a.Acquire(ctx, "a", shard, terms)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// Shard 4's lease runs out before shard 2's, which b takes once it
	// ran out.
	expired := acquire(4, short)
	held1, stolen, held2 := acquire(1, long), acquire(2, short), acquire(3, long)
	released := acquire(5, long)
	if err := a.Release(ctx, released); err != nil {
		t.Fatal(err)
	}
	waitAcquire(t, b, "b", 2, long)
	wrongEpoch := held2
	wrongEpoch.Shard, wrongEpoch.Epoch = 6, 7
	before := time.Now()
	renewed, lost, err := a.RenewMany(ctx, []store.Lease{held1, stolen, expired, held2, released, wrongEpoch}, long)
	if err != nil {
		t.Fatal(err)
	}
	shards := func(ls []store.Lease) (out []int) {
		for _, l := range ls {
			out = append(out, l.Shard)
		}
		return out
	}
	if fmt.Sprint(shards(renewed)) != "[1 3]" || fmt.Sprint(shards(lost)) != "[2 4 5 6]" {
		t.Fatalf("renewed %v, lost %v; want [1 3] and [2 4 5 6]", shards(renewed), shards(lost))
	}
	for _, l := range renewed {
		if l.Deadline.Before(before.Add(long.TTL-long.Margin)) || l.Epoch != map[int]int64{1: held1.Epoch, 3: held2.Epoch}[l.Shard] {
			t.Errorf("renewed %+v: want its epoch and a new deadline", l)
		}
	}
	rows, err := a.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := rows[2]; r.Owner != "b" || !r.Held {
		t.Errorf("the stolen shard's row %+v: want b's still", r)
	}
	if r := rows[4]; r.Held {
		t.Errorf("the run-out shard's row %+v was renewed", r)
	}
	if r := rows[1]; !r.Held || r.ExpiresAt.Before(time.Now().Add(50*time.Second)) {
		t.Errorf("a renewed row %+v: want it held for about a minute", r)
	}

	if r, l, err := a.RenewMany(ctx, nil, long); r != nil || l != nil || err != nil {
		t.Errorf("renewing nothing: %v %v %v", r, l, err)
	}
	for _, bad := range []struct {
		leases []store.Lease
		terms  store.LeaseTerms
	}{
		{[]store.Lease{held1, held1}, long},
		{[]store.Lease{{Shard: 256, Owner: "a", Epoch: 1}}, long},
		{[]store.Lease{held1}, store.LeaseTerms{TTL: time.Second, Margin: time.Second}},
	} {
		if _, _, err := a.RenewMany(ctx, bad.leases, bad.terms); err == nil || errors.Is(err, store.ErrFenced) {
			t.Errorf("bad arguments %+v: %v, want a plain error", bad, err)
		}
	}
}

// A replica that leaves is no longer live at once; the others stay, and
// a heartbeat brings it back.
func TestLeave(t *testing.T) {
	db := replicas(t, 1)[0]
	ctx := context.Background()
	for _, r := range []string{"r1", "r2"} {
		if err := db.Heartbeat(ctx, r, "http://"+r+":7071", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	live := func() string {
		t.Helper()
		rs, err := db.Replicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := ""
		for _, r := range rs {
			out += fmt.Sprintf("%s:%v ", r.ID, r.Live)
		}
		return out
	}
	if err := db.Leave(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if got := live(); got != "r1:false r2:true " {
		t.Fatalf("after r1 left: %s", got)
	}
	if err := db.Leave(ctx, "r1"); err != nil { // again: nothing to do
		t.Fatal(err)
	}
	if err := db.Leave(ctx, "r3"); err != nil { // never beat
		t.Fatal(err)
	}
	if err := db.Leave(ctx, ""); err == nil {
		t.Error("a leave without a replica id")
	}
	if err := db.Heartbeat(ctx, "r1", "http://r1:7071", time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := live(); got != "r1:true r2:true " {
		t.Fatalf("after r1 beat again: %s", got)
	}
}
