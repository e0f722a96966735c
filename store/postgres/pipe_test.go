package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/postgres/pipe"
)

// A statement that reads sees the writes queued before it in its
// transaction, in the order they were queued; Rollback drops them with
// what was sent, Commit keeps both.
func TestPipeReadsSeeQueuedWrites(t *testing.T) {
	db := replicas(t, 1)[0]
	ctx := context.Background()
	history := func(tx *pipe.Tx, psid string) int {
		t.Helper()
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM baton_history WHERE page = '1' AND psid = $1`, psid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	run := func(psid string, end func(*pipe.Tx) error) {
		t.Helper()
		conn, err := db.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		tx := pipe.Begin(conn, "BEGIN")
		for i := range 3 {
			tx.Queue("history", `INSERT INTO baton_history (page, psid, shard, record) VALUES ('1', $1, 0, $2)`, psid, []byte(`{"i":`+string(rune('0'+i))+`}`))
		}
		if n := history(tx, psid); n != 3 {
			t.Errorf("the read saw %d of the 3 writes queued before it", n)
		}
		// The last write queued is the last done: an update queued after
		// the inserts sees them all.
		tx.Queue("history", `UPDATE baton_history SET record = '{"i":9}' WHERE page = '1' AND psid = $1`, psid)
		rows, err := tx.Query(ctx, `SELECT record->>'i' FROM baton_history WHERE page = '1' AND psid = $1`, psid)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		if err := rows.Err(); err != nil || strings.Join(got, ",") != "9,9,9" {
			t.Errorf("rows %v %v, want the update queued after the inserts applied to all three", got, err)
		}
		tx.Queue("history", `INSERT INTO baton_history (page, psid, shard, record) VALUES ('1', $1, 0, '{}')`, psid)
		if err := end(tx); err != nil {
			t.Fatal(err)
		}
	}
	run("rolled", func(tx *pipe.Tx) error { tx.Rollback(ctx); return nil })
	run("kept", func(tx *pipe.Tx) error { return tx.Commit(ctx) })
	if n := historyLen(t, db, store.ThreadKey{Page: "1", PSID: "rolled"}); n != 0 {
		t.Errorf("%d entries of the rolled-back transaction", n)
	}
	if n := historyLen(t, db, store.ThreadKey{Page: "1", PSID: "kept"}); n != 4 {
		t.Errorf("%d entries committed, want 4 (the last queued goes with the COMMIT)", n)
	}
}

// A queued write that fails fails the statement that carries it, naming
// the write, and every later statement; in a group commit it fails its own
// caller only, whose function's end sends it.
func TestPipeQueuedWriteFails(t *testing.T) {
	db := replicas(t, 1)[0]
	ctx := context.Background()
	bad := store.Intent{ThreadKey: store.ThreadKey{Page: "1", PSID: "2\x00"}} // text refuses NUL
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx := pipe.Begin(conn, "BEGIN")
	x := newTx(ctx, tx, db)
	if err := x.PutIntent(bad); err != nil {
		t.Fatalf("a queued write failed at once: %v", err)
	}
	_, err = x.Thread(store.ThreadKey{Page: "1", PSID: "3"})
	if err == nil || errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "write intent") {
		t.Errorf("the read carrying a failed write: %v, want the write's error", err)
	}
	if _, err := x.Intents(); err == nil || !strings.Contains(err.Error(), "write intent") {
		t.Errorf("a later read: %v, want the failed write's error again", err)
	}
	tx.Rollback(ctx)
	conn.Release()

	// Three callers in one group commit: the one whose write fails, and it
	// alone, fails.
	inside, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- db.Update(ctx, func(store.Tx) error { close(inside); <-release; return nil })
	}()
	<-inside
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, in := range []store.Intent{
		{ThreadKey: store.ThreadKey{Page: "1", PSID: "4"}}, bad, {ThreadKey: store.ThreadKey{Page: "1", PSID: "5"}},
	} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = db.Update(ctx, func(tx store.Tx) error { return tx.PutIntent(in) }) }()
	}
	waitQueued(t, db, 3)
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[2] != nil || errs[1] == nil {
		t.Fatalf("errors %v: want the bad write's alone", errs)
	}
	if err := db.View(func(tx store.ReadTx) error {
		in, err := tx.Intents()
		if err == nil && len(in) != 2 {
			t.Errorf("%d intents, want the 2 good ones", len(in))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// waitQueued waits until n writes wait for the DB's next group commit.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); db.gc.Queued() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", db.gc.Queued(), n)
		}
		time.Sleep(time.Millisecond) // the callers' goroutines queue on their own
	}
}

// PrefetchThreads reads the threads there are, in one statement that sees
// the writes queued before it, and remembers those there are not, until
// one is written.
func TestPrefetchThreads(t *testing.T) {
	db := replicas(t, 1)[0]
	ctx := context.Background()
	there, queued, missing := store.ThreadKey{Page: "1", PSID: "2"}, store.ThreadKey{Page: "1", PSID: "3"}, store.ThreadKey{Page: "1", PSID: "4"}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutThread(thread(there, "A")) }); err != nil {
		t.Fatal(err)
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx := pipe.Begin(conn, "BEGIN")
	defer tx.Rollback(ctx)
	x := newTx(ctx, tx, db)
	// Written in another transaction's way: not in this one's cache.
	tx.Queue("thread", `INSERT INTO baton_threads (page, psid, shard, state, owner, record) VALUES ('1', '3', 0, 'idle', '', '{"page_id":"1","psid":"3","owner":"B"}')`)
	if err := x.PrefetchThreads([]store.ThreadKey{there, queued, missing, there}); err != nil {
		t.Fatal(err)
	}
	if tx.Queued() != 0 {
		t.Fatalf("%d writes still queued: the prefetch did not carry them", tx.Queued())
	}
	if got := x.threads[there]; got.Owner != "A" || x.threads[queued].Owner != "B" {
		t.Fatalf("cached %+v and %+v, want owners A and B", got, x.threads[queued])
	}
	if _, err := x.Thread(missing); !errors.Is(err, store.ErrNotFound) || !x.absent[missing] {
		t.Fatalf("a thread there is not: %v, absent %v", err, x.absent[missing])
	}
	if err := x.PutThread(thread(missing, "C")); err != nil {
		t.Fatal(err)
	}
	if th, err := x.Thread(missing); err != nil || th.Owner != "C" {
		t.Fatalf("the thread written: %+v %v", th, err)
	}
}

func thread(k store.ThreadKey, owner string) store.Thread {
	th := store.Thread{ThreadKey: k}
	th.Owner = owner
	return th
}
