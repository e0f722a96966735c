package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"testing"

	"github.com/batonhq/baton/internal/pgtest"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testDSN is the throw-away server scripts/pg.sh started. Without one the
// tests skip, loudly, unless CI or BATON_REQUIRE_PG is set: there a
// missing server fails them.
func testDSN(tb testing.TB) string {
	tb.Helper()
	return pgtest.DSN(tb, "./store/postgres")
}

// schemaFor is a schema of its own for each test directory: reopening
// the directory reopens the schema; it is dropped when the test ends.
func schemaFor(dir string) string {
	h := fnv.New64a()
	h.Write([]byte(dir))
	return fmt.Sprintf("t_%016x", h.Sum64())
}

var dropped sync.Map // schemas whose drop is registered

func dropAtEnd(tb testing.TB, schema string) {
	if _, seen := dropped.LoadOrStore(schema, true); seen {
		return
	}
	dsn := testDSN(tb)
	tb.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
}

// open opens the store of dir, closed when the test ends.
func open(tb testing.TB, dir string) store.Store {
	tb.Helper()
	schema := schemaFor(dir)
	dropAtEnd(tb, schema)
	db, err := Open(context.Background(), testDSN(tb), Options{Schema: schema, MaxConns: 4})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func TestSuite(t *testing.T) {
	testDSN(t) // one skip, not one a case
	storetest.Run(t, open)
}

// Records keep what Baton wrote, a NUL escape or invalid UTF-8 in a
// bot's metadata included: jsonb would refuse \u0000.
func TestRecordsKeepAnyText(t *testing.T) {
	s := open(t, t.TempDir())
	k := store.ThreadKey{Page: "1", PSID: "2"}
	meta := "a\x00b\xffc"
	err := s.Update(context.Background(), func(tx store.Tx) error {
		return tx.AppendHistory(k, store.HistoryEntry{Event: "pass", Metadata: meta})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx store.ReadTx) error {
		h, err := tx.History(k)
		if err != nil || len(h) != 1 || h[0].Metadata != strings.ToValidUTF8(meta, "\uFFFD") {
			t.Errorf("history %+v %v", h, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrations(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	schema := schemaFor(t.TempDir())
	dropAtEnd(t, schema)
	versions := func() (n, max int) {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, `SELECT count(*), max(version) FROM `+pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&n, &max); err != nil {
			t.Fatal(err)
		}
		return n, max
	}

	// Two replicas starting together on a fresh database: both open, the
	// schema is migrated once.
	var wg sync.WaitGroup
	dbs := make([]*DB, 4)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(ctx, dsn, Options{Schema: schema, MaxConns: 2})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d of %d together: %v", i+1, len(dbs), err)
		}
		dbs[i].Close()
	}
	if n, v := versions(); n != SchemaVersion() || v != SchemaVersion() {
		t.Fatalf("after concurrent opens: %d migrations recorded, version %d; want %d once each", n, v, SchemaVersion())
	}

	// Reopening applies nothing.
	db, err := Open(ctx, dsn, Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if db.Shards() != 256 {
		t.Errorf("shards %d, want 256", db.Shards())
	}
	db.Close()
	if n, _ := versions(); n != SchemaVersion() {
		t.Fatalf("a reopen recorded %d migrations, want %d", n, SchemaVersion())
	}

	// A later Baton's schema is refused, and nothing is written.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	future := SchemaVersion() + 1
	if _, err := conn.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+` (version, name) VALUES ($1, 'from_the_future')`, future); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	_, err = Open(ctx, dsn, Options{Schema: schema})
	var se *SchemaError
	if !errors.As(err, &se) || se.Found != future || se.Known != SchemaVersion() {
		t.Fatalf("open of a later schema: %v, want a *SchemaError", err)
	}
	t.Log(err)
}

// An exclusive store is the only one on its schema while it is open: a
// second exclusive Open fails at once, a shared one still opens, and the
// lock goes with Close.
func TestExclusive(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	schema := schemaFor(t.TempDir())
	dropAtEnd(t, schema)
	first, err := Open(ctx, dsn, Options{Schema: schema, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dsn, Options{Schema: schema, Exclusive: true}); !errors.Is(err, ErrHeld) {
		t.Fatalf("a second exclusive open: %v, want ErrHeld", err)
	} else {
		t.Log(err)
	}
	other := schemaFor(t.TempDir())
	dropAtEnd(t, other)
	elsewhere, err := Open(ctx, dsn, Options{Schema: other, Exclusive: true})
	if err != nil {
		t.Fatalf("another schema is another lock: %v", err)
	}
	elsewhere.Close()
	first.Close()
	again, err := Open(ctx, dsn, Options{Schema: schema, Exclusive: true})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	// The replicas' side of the lock: any number together, none beside an
	// exclusive one.
	if _, err := Open(ctx, dsn, Options{Schema: schema, Shared: true}); !errors.Is(err, ErrHeld) {
		t.Fatalf("a shared open beside an exclusive one: %v, want ErrHeld", err)
	}
	again.Close()
	r1, err := Open(ctx, dsn, Options{Schema: schema, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(ctx, dsn, Options{Schema: schema, Shared: true})
	if err != nil {
		t.Fatalf("two replicas: %v", err)
	}
	defer r2.Close()
	if _, err := Open(ctx, dsn, Options{Schema: schema, Exclusive: true}); !errors.Is(err, ErrHeld) {
		t.Fatalf("an exclusive open beside replicas: %v, want ErrHeld", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	tests := []struct {
		name, dsn string
		opt       Options
	}{
		{"bad schema name", dsn, Options{Schema: "Robert'); DROP TABLE x;--"}},
		{"DSN does not parse", "postgres://a:secret@[::1", Options{}},
		{"nobody listens", "postgres://baton:secret@127.0.0.1:1/baton?sslmode=disable&connect_timeout=2", Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(ctx, tt.dsn, tt.opt)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if msg := err.Error(); contains(msg, "secret") {
				t.Errorf("the error shows the password: %s", msg)
			}
			t.Log(err)
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
