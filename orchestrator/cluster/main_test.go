package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/pgtest"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/postgres"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testDSN is the throw-away server scripts/pg.sh started. Without one the
// tests skip, loudly, unless CI or BATON_REQUIRE_PG is set: there a
// missing server fails them.
func testDSN(tb testing.TB) string {
	tb.Helper()
	return pgtest.DSN(tb, "./orchestrator/cluster")
}

// pgDB is the PostgreSQL store with RenewMany and Leave made of the calls
// it has (Renew per lease; a heartbeat that runs out at once), until
// store/postgres has its own. As one statement would, RenewMany gives
// every lease it renewed the deadline of the moment it was called.
type pgDB struct{ *postgres.DB }

func (d pgDB) RenewMany(ctx context.Context, leases []store.Lease, terms store.LeaseTerms) (renewed, lost []store.Lease, err error) {
	sent := time.Now()
	for _, l := range leases {
		r, err := d.Renew(ctx, l, terms)
		switch {
		case errors.Is(err, store.ErrFenced):
			lost = append(lost, l)
		case err != nil:
			return nil, nil, err
		default:
			r.Deadline = sent.Add(terms.TTL - terms.Margin)
			renewed = append(renewed, r)
		}
	}
	return renewed, lost, nil
}

func (d pgDB) Leave(ctx context.Context, replica string) error {
	return d.Heartbeat(ctx, replica, "", time.Microsecond)
}

// openDBs opens n stores on one fresh schema, one for each replica as n
// baton serve processes would have; closed, and the schema dropped, when
// the test ends.
func openDBs(t *testing.T, n int) []pgDB {
	t.Helper()
	dsn := testDSN(t)
	schema := fmt.Sprintf("cluster_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	dbs := make([]pgDB, n)
	for i := range dbs {
		db, err := postgres.Open(context.Background(), dsn, postgres.Options{Schema: schema, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		dbs[i] = pgDB{db}
	}
	return dbs
}

// stallDB is a DB whose calls, while it is stalled, block until their
// context ends, as calls to an unreachable server do.
type stallDB struct {
	DB
	stalled atomic.Bool
}

func (d *stallDB) wait(ctx context.Context) error {
	if !d.stalled.Load() {
		return nil
	}
	<-ctx.Done()
	return fmt.Errorf("stalled: %w", ctx.Err())
}

func (d *stallDB) Acquire(ctx context.Context, replica string, shard int, terms store.LeaseTerms) (store.Lease, error) {
	if err := d.wait(ctx); err != nil {
		return store.Lease{}, err
	}
	return d.DB.Acquire(ctx, replica, shard, terms)
}

func (d *stallDB) RenewMany(ctx context.Context, leases []store.Lease, terms store.LeaseTerms) ([]store.Lease, []store.Lease, error) {
	if err := d.wait(ctx); err != nil {
		return nil, nil, err
	}
	return d.DB.RenewMany(ctx, leases, terms)
}

func (d *stallDB) Release(ctx context.Context, l store.Lease) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	return d.DB.Release(ctx, l)
}

func (d *stallDB) Leases(ctx context.Context) ([]store.ShardLease, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.DB.Leases(ctx)
}

func (d *stallDB) Replicas(ctx context.Context) ([]store.Replica, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.DB.Replicas(ctx)
}

func (d *stallDB) Heartbeat(ctx context.Context, replica, addr string, ttl time.Duration) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	return d.DB.Heartbeat(ctx, replica, addr, ttl)
}

func (d *stallDB) Leave(ctx context.Context, replica string) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	return d.DB.Leave(ctx, replica)
}

// testLog is a logger that writes to the test's log.
func testLog(t *testing.T) *zap.Logger { return zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)) }
