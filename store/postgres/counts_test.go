package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonhq/baton/store/postgres/pipe"
)

// Replicas share each app's pending count (baton_pending_counts), which
// every group commit that enqueues or delivers updates: a commit locks
// those rows in key order, so that two replicas' commits queue behind
// each other and never wait for each other. In a map's order they did,
// until PostgreSQL's deadlock detection failed one of the two (seen in
// the cluster chaos test: "write counts: deadlock detected" on a rule's
// intent). Here another transaction holds app m's row: a flush of apps a
// to z must hold a to l, and none of n to z, while it waits for m.
func TestCountsLockedInOrder(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	var apps []string
	for c := 'a'; c <= 'z'; c++ {
		apps = append(apps, string(c))
		if _, err := a.pool.Exec(ctx, `INSERT INTO baton_pending_counts (app, n) VALUES ($1, 1)`, string(c)); err != nil {
			t.Fatal(err)
		}
	}
	other, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx) //nolint:errcheck // committed below
	if _, err := other.Exec(ctx, `UPDATE baton_pending_counts SET n = n + 1 WHERE app = 'm'`); err != nil {
		t.Fatal(err)
	}

	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	ptx := pipe.Begin(conn, `BEGIN`)
	defer ptx.Rollback(ctx)
	x := newTx(ctx, ptx, a)
	x.pending = map[string]int64{}
	for _, app := range apps {
		x.pending[app] = 1
	}
	flushed := make(chan error, 1)
	go func() { x.flush(); flushed <- ptx.Flush(ctx) }()

	// Once the flush waits for m, see which rows it holds.
	deadline := time.Now().Add(10 * time.Second)
	for waiting := 0; waiting == 0; {
		if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the flush never waited for app m's row")
		}
		time.Sleep(10 * time.Millisecond) // the server's view of locks: polled
	}
	rows, err := a.pool.Query(ctx, `SELECT app FROM baton_pending_counts ORDER BY app FOR UPDATE SKIP LOCKED`)
	if err != nil {
		t.Fatal(err)
	}
	free, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(free), "[n o p q r s t u v w x y z]"; got != want {
		t.Errorf("while the flush waits for m, the rows free are %s, want %s: it locks in key order", got, want)
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := ptx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
