package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonhq/baton/store/postgres"
)

// What the database shows of the run. Baton writes no replica and no
// epoch into its rows, so the test adds, in its own schema, triggers that
// record them: every change of a lease row (baton_shards), and for every
// row written for a thread (its record, history, intents, rule jobs) the
// writing session's application_name (one per boot of a replica) and the
// lease its shard had then. A row-level trigger runs inside the writing
// transaction, so what it records commits, or rolls back, with the write:
// only committed writes are in the log. Its read of the shard's lease is
// the one the fence checks before COMMIT: epochs only grow, so a write
// that commits under epoch e read e.

// auditSQL creates the logs and their triggers; %[1]s is the schema.
const auditSQL = `
CREATE TABLE %[1]s.chaos_lease_log (
    id bigserial PRIMARY KEY, shard int, old_owner text, old_epoch bigint, old_expires timestamptz,
    owner text, epoch bigint, expires timestamptz, at timestamptz);
CREATE FUNCTION %[1]s.chaos_lease_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO %[1]s.chaos_lease_log (shard, old_owner, old_epoch, old_expires, owner, epoch, expires, at)
    VALUES (NEW.shard, OLD.owner, OLD.epoch, OLD.expires_at, NEW.owner, NEW.epoch, NEW.expires_at, clock_timestamp());
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_lease_log AFTER UPDATE ON %[1]s.baton_shards FOR EACH ROW EXECUTE FUNCTION %[1]s.chaos_lease_log();

CREATE TABLE %[1]s.chaos_write_log (
    id bigserial PRIMARY KEY, tbl text, page text, psid text, row_id bigint, shard int, writer text,
    lease_owner text, lease_epoch bigint, lease_expires timestamptz, at timestamptz);
CREATE FUNCTION %[1]s.chaos_write_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO %[1]s.chaos_write_log (tbl, page, psid, row_id, shard, writer, lease_owner, lease_epoch, lease_expires, at)
    SELECT TG_TABLE_NAME, NEW.page, NEW.psid, CASE WHEN TG_TABLE_NAME = 'baton_history' THEN (to_jsonb(NEW)->>'id')::bigint END,
        NEW.shard, current_setting('application_name'), s.owner, s.epoch, s.expires_at, clock_timestamp()
    FROM %[1]s.baton_shards s WHERE s.shard = NEW.shard;
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_write_log AFTER INSERT OR UPDATE ON %[1]s.baton_threads FOR EACH ROW EXECUTE FUNCTION %[1]s.chaos_write_log();
CREATE TRIGGER chaos_write_log AFTER INSERT OR UPDATE ON %[1]s.baton_intents FOR EACH ROW EXECUTE FUNCTION %[1]s.chaos_write_log();
CREATE TRIGGER chaos_write_log AFTER INSERT OR UPDATE ON %[1]s.baton_jobs FOR EACH ROW EXECUTE FUNCTION %[1]s.chaos_write_log();
-- The history's is deferred to COMMIT: its time is the latest before the
-- transition became visible, the end of the write in the porcupine model.
CREATE CONSTRAINT TRIGGER chaos_write_log AFTER INSERT ON %[1]s.baton_history DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION %[1]s.chaos_write_log();
`

// prepareChaosSchema migrates a fresh schema as a replica would, and adds
// the audit triggers before any replica starts.
func prepareChaosSchema(t *testing.T, dsn, schema string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn, postgres.Options{Schema: schema, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, fmt.Sprintf(auditSQL, schema)); err != nil {
		t.Fatal(err)
	}
	return pool
}

// leaseRow is one change of a shard's lease row.
type leaseRow struct {
	id                  int64
	shard               int
	oldOwner, owner     string
	oldEpoch, epoch     int64
	oldExpires, expires time.Time
	at                  time.Time
}

// writeRow is one row written for a thread, with its writer and its
// shard's lease as the writing transaction read it.
type writeRow struct {
	tbl, page, psid string
	rowID           int64
	shard           int
	writer          string
	owner           string
	epoch           int64
	expires, at     time.Time
}

// historyRow is a thread's history entry with when it committed.
type historyRow struct {
	psid      string
	id        int64
	event     string
	from, to  string
	by, cause string
	ignored   string
	metadata  string
	at        time.Time // the deferred trigger's time: at COMMIT
	writer    string
}

// chaosDB reads what the run left in the database.
type chaosDB struct{ pool *pgxpool.Pool }

func collect[T any](t *testing.T, pool *pgxpool.Pool, sql string, scan func(pgx.CollectableRow) (T, error)) []T {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (d chaosDB) leases(t *testing.T) []leaseRow {
	return collect(t, d.pool, `SELECT id, shard, old_owner, old_epoch, old_expires, owner, epoch, expires, at FROM chaos_lease_log ORDER BY id`,
		func(r pgx.CollectableRow) (leaseRow, error) {
			var l leaseRow
			var oldExp, exp pgTime
			err := r.Scan(&l.id, &l.shard, &l.oldOwner, &l.oldEpoch, &oldExp, &l.owner, &l.epoch, &exp, &l.at)
			l.oldExpires, l.expires = tsOf(oldExp), tsOf(exp)
			return l, err
		})
}

func (d chaosDB) writes(t *testing.T) []writeRow {
	return collect(t, d.pool, `SELECT tbl, page, psid, coalesce(row_id, 0), shard, writer, lease_owner, lease_epoch, lease_expires, at FROM chaos_write_log ORDER BY id`,
		func(r pgx.CollectableRow) (writeRow, error) {
			var w writeRow
			var exp pgTime
			err := r.Scan(&w.tbl, &w.page, &w.psid, &w.rowID, &w.shard, &w.writer, &w.owner, &w.epoch, &exp, &w.at)
			w.expires = tsOf(exp)
			return w, err
		})
}

// history is every thread's history, by thread and id, with the time its
// transaction committed (the deferred trigger's).
func (d chaosDB) history(t *testing.T) []historyRow {
	return collect(t, d.pool, `
		SELECT h.psid, h.id, h.record::text, w.at, w.writer FROM baton_history h
		JOIN chaos_write_log w ON w.tbl = 'baton_history' AND w.row_id = h.id ORDER BY h.psid, h.id`,
		func(r pgx.CollectableRow) (historyRow, error) {
			var h historyRow
			var rec string
			if err := r.Scan(&h.psid, &h.id, &rec, &h.at, &h.writer); err != nil {
				return h, err
			}
			var e struct {
				Event, From, To, By, Cause, Ignored, Metadata string
			}
			err := json.Unmarshal([]byte(rec), &e)
			h.event, h.from, h.to, h.by, h.cause, h.ignored, h.metadata = e.Event, e.From, e.To, e.By, e.Cause, e.Ignored, e.Metadata
			return h, err
		})
}

// threads is each thread's shard and owner (app id) by Baton's record.
func (d chaosDB) threads(t *testing.T) map[string]struct {
	shard int
	owner string
} {
	type th struct {
		psid  string
		shard int
		owner string
	}
	rows := collect(t, d.pool, `SELECT psid, shard, owner FROM baton_threads`, func(r pgx.CollectableRow) (th, error) {
		var x th
		return x, r.Scan(&x.psid, &x.shard, &x.owner)
	})
	out := map[string]struct {
		shard int
		owner string
	}{}
	for _, r := range rows {
		out[r.psid] = struct {
			shard int
			owner string
		}{r.shard, r.owner}
	}
	return out
}

// holders counts the live leases per owner, by the database's clock.
func (d chaosDB) holders(t *testing.T) map[string]int {
	type h struct {
		owner string
		n     int
	}
	rows := collect(t, d.pool, `SELECT owner, count(*) FROM baton_shards WHERE expires_at > clock_timestamp() GROUP BY owner`,
		func(r pgx.CollectableRow) (h, error) {
			var x h
			return x, r.Scan(&x.owner, &x.n)
		})
	out := map[string]int{}
	for _, r := range rows {
		out[r.owner] = r.n
	}
	return out
}

// lastExpiry is when the last of owner's leases ran out (or runs out), by
// the lease log: the latest renewal's end.
func (d chaosDB) lastExpiry(t *testing.T, owner string) time.Time {
	var at pgTime
	if err := d.pool.QueryRow(context.Background(), `SELECT max(expires) FROM chaos_lease_log WHERE owner = $1`, owner).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return tsOf(at)
}

// pgTime is a timestamptz that may be NULL or -infinity (a lease never
// held): the zero time then.
type pgTime = pgtype.Timestamptz

func tsOf(v pgTime) time.Time {
	if !v.Valid || v.InfinityModifier != pgtype.Finite {
		return time.Time{}
	}
	return v.Time
}
