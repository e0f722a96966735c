// Package postgres implements store.Store on PostgreSQL, through pgx: the
// store for teams that run Baton on a database they already operate. It
// creates and migrates its own schema at Open. Writes from concurrent
// callers share one transaction and one COMMIT (store/groupcommit), as
// store/bolt's share one fsync.
//
// It is also the store of several replicas on one database, each acting
// for the shards it holds leases on (store.Sharded, store/cluster.go):
//   - the shard leases and heartbeats (package lease, the DB's through its
//     *lease.Table): one row per shard, expiring by the database's clock;
//     UpdateFenced, a write that commits only while its epochs are the
//     shards';
//   - Scoped (scope.go), the store as one replica sees it: its writes of a
//     thread's rows fenced by the replica's leases (a shard it does not
//     hold is a *store.NotOwnedError), its scans of its own work (lanes,
//     timers, jobs, intents) kept to its shards, every other read global;
//   - the inbound queue (inbound.go), where any replica leaves the webhooks
//     it accepted for their shard's owner to route, and a NOTIFY at COMMIT
//     wakes the owners' listeners.
//
// They are for the orchestrator's cluster mode, still to come: until then,
// baton serve opens Exclusive, alone on its database, and uses the DB
// itself, every shard its own.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/groupcommit"
	"github.com/batonhq/baton/store/postgres/lease"
	"github.com/batonhq/baton/store/postgres/listen"
	"github.com/batonhq/baton/store/postgres/migrations"
	"github.com/batonhq/baton/store/postgres/pipe"
)

// DB is a store.Store on one PostgreSQL database (or one schema of it).
type DB struct {
	// Table is the shard leases and heartbeats: its methods are the DB's.
	*lease.Table
	pool *pgxpool.Pool
	// gc is the group commit of Update, the scopes' and UpdateFenced;
	// accept, the Acceptor's, beside it on the same pool.
	gc, accept *groupcommit.Group[*tx]
	shards     int
	schema     string
	seqs       sequences
	// owner holds the exclusive lock of Options.Exclusive, for the life
	// of the store.
	owner     *pgxpool.Conn
	closeOnce sync.Once
	// hub runs the ListenInbound sessions, which Close ends.
	hub *listen.Hub
}

// ErrHeld is returned by an exclusive Open while another process holds
// the database (or schema) exclusively.
var ErrHeld = errors.New("held by another Baton process")

// Options tune a DB; the zero value is the default.
type Options struct {
	// Schema is the schema Baton's tables live in, created when missing
	// (default: the connection's search_path, usually public). Lower-case
	// letters, digits and underscores.
	Schema string
	// MaxConns bounds the connection pool (default 10): two connections
	// write at a time (the Acceptor's group commit and the DB's), the
	// others serve reads.
	MaxConns int32
	// ConnectTimeout bounds Open's wait for the server (default 10 s).
	ConnectTimeout time.Duration
	// CommitWait lets a small write group wait up to this long for more
	// writes to share its COMMIT (default 0: never wait).
	CommitWait time.Duration
	// Exclusive makes this process the only one on the database (or
	// schema) while the store is open: a second exclusive Open fails at
	// once with ErrHeld, as a second bbolt Open does, and so does a
	// Shared one. baton serve opens exclusively when it is not one of
	// several replicas. The lock is a session advisory lock on one pooled
	// connection: if the server drops that connection, the lock goes with
	// it.
	Exclusive bool
	// Shared is the replicas' side of the same lock: any number of Shared
	// opens hold the database together (the shard leases share the work
	// out), and none while an Exclusive one does, so that a Baton that is
	// not a replica never writes beside them.
	Shared bool
}

// SchemaError is a database whose schema a later Baton migrated: this
// binary does not know its tables and must not write to them.
type SchemaError = migrations.SchemaError

// SchemaVersion is the schema this binary migrates a database to.
func SchemaVersion() int { return migrations.Version() }

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects to the database of dsn (a PostgreSQL URL or key=value
// string), migrates its schema to this binary's and returns the store. A
// database whose schema a later Baton wrote is refused with a
// *SchemaError; two processes opening one database together migrate it
// once.
func Open(ctx context.Context, dsn string, opt Options) (*DB, error) {
	if opt.Schema != "" && !schemaName.MatchString(opt.Schema) {
		return nil, fmt.Errorf("postgres: schema %q: use lower-case letters, digits and underscores", opt.Schema)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's error shows the DSN with its password masked.
		return nil, fmt.Errorf("postgres: the DSN does not parse: %w", err)
	}
	cfg.MaxConns = 10
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	if opt.Exclusive && opt.Shared {
		return nil, errors.New("postgres: open either exclusively or shared, not both")
	}
	if opt.Exclusive || opt.Shared {
		cfg.MaxConns++ // the lock's own
	}
	if opt.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = opt.Schema
	}
	// Records are JSON Baton wrote; UTC keeps the server's own setting out
	// of what the tables say.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	timeout := opt.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", where(cfg), err)
	}
	if err := pool.Ping(cctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", where(cfg), err)
	}
	if err := migrations.Apply(cctx, pool, opt.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	d := &DB{pool: pool, schema: opt.Schema, hub: listen.New(pool)}
	if opt.Exclusive || opt.Shared {
		if err := d.lock(cctx, opt.Schema, opt.Shared); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: open %s: %w", where(cfg), err)
		}
	}
	if err := d.readMeta(cctx); err != nil {
		d.release()
		pool.Close()
		return nil, err
	}
	d.gc = groupcommit.New(d.commitGroup, opt.CommitWait)
	d.accept = groupcommit.New(d.commitGroup, opt.CommitWait)
	return d, nil
}

// lock takes the lock of the schema, exclusive or shared, on a
// connection of its own.
func (d *DB) lock(ctx context.Context, schema string, shared bool) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	fn, held := "pg_try_advisory_lock", "stop it, or give this one another database or schema"
	if shared {
		fn, held = "pg_try_advisory_lock_shared", "one that is not a replica (no cluster: in its config); stop it first, or give the replicas another database or schema"
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT `+fn+`(hashtextextended($1, 0))`, "baton owner "+schema).Scan(&ok); err != nil {
		conn.Release()
		return err
	}
	if !ok {
		conn.Release()
		return fmt.Errorf("%w: %s", ErrHeld, held)
	}
	d.owner = conn
	return nil
}

// release gives the exclusive lock back, if held.
func (d *DB) release() {
	if d.owner == nil {
		return
	}
	// The session lock ends with the session: closing the connection
	// frees it even if the unlock fails.
	_ = d.owner.Conn().Close(context.Background())
	d.owner.Release()
	d.owner = nil
}

// where names the server of cfg for an error, without its credentials.
func where(cfg *pgxpool.Config) string {
	return cfg.ConnConfig.Host + ":" + strconv.Itoa(int(cfg.ConnConfig.Port)) + "/" + cfg.ConnConfig.Database
}

func (d *DB) readMeta(ctx context.Context) error {
	var v string
	if err := d.pool.QueryRow(ctx, `SELECT value FROM baton_meta WHERE key = 'shards'`).Scan(&v); err != nil {
		return fmt.Errorf("postgres: read the shard count: %w", err)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1<<16 {
		return fmt.Errorf("postgres: baton_meta says %q shards: not a shard count", v)
	}
	d.shards = n
	d.Table = lease.New(d.pool, n)
	s := &d.seqs
	if err := d.pool.QueryRow(ctx, `SELECT pg_get_serial_sequence('baton_journal', 'seq'), pg_get_serial_sequence('baton_transcript', 'seq'),
		pg_get_serial_sequence('baton_inbound', 'seq'), 'baton_delivery_id'::regclass::text`).Scan(&s.journal, &s.transcript, &s.inbound, &s.delivery); err != nil {
		return fmt.Errorf("postgres: find the sequences: %w", err)
	}
	return nil
}

// sequences name the sequences a transaction reserves values of.
type sequences struct{ journal, transcript, inbound, delivery string }

// Shards is the number of shards threads are split into, fixed when the
// database was created.
func (d *DB) Shards() int { return d.shards }

// ShardOf is the shard of thread k: FNV-1a of page, NUL, PSID.
func (d *DB) ShardOf(k store.ThreadKey) int { return shardOf(k, d.shards) }

func shardOf(k store.ThreadKey, shards int) int {
	h := fnv.New32a()
	h.Write([]byte(k.Page))
	h.Write([]byte{0})
	h.Write([]byte(k.PSID))
	return int(h.Sum32() % uint32(shards))
}

// Close waits for queued writes, ends the inbound listeners (each
// ListenInbound returns once its connection is closed) and closes the
// pool. It may be called more than once.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.gc.Close()
		d.accept.Close()
		d.hub.Close()
		d.release()
		d.pool.Close()
	})
	return nil
}

// Update runs fn in a write transaction shared with concurrent callers; it
// returns once the transaction committed (or failed).
func (d *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	return d.gc.Do(ctx, func(x *tx) error { return x.run(fn) })
}

// run runs one caller's fn and sends the writes it queued: a write that
// fails fails fn, which the group commit takes out.
func (x *tx) run(fn func(store.Tx) error) error {
	if err := fn(x); err != nil {
		return err
	}
	x.late = false
	return x.t.Flush(x.ctx)
}

// Acceptor is the store a replica accepts webhooks through: its Update
// runs in a group commit of its own, concurrent with the DB's, so that a
// webhook's acknowledgement waits for a small COMMIT of appended inbound
// entries, not behind a transaction routing hundreds of queued events.
// Its writes should be rows no other transaction of this process writes
// (an inbound entry is new): one that is would wait for that transaction's
// locks. View is the DB's; Close does nothing.
func (d *DB) Acceptor() store.Store { return acceptor{d} }

type acceptor struct{ d *DB }

func (a acceptor) Update(ctx context.Context, fn func(store.Tx) error) error {
	return a.d.accept.Do(ctx, func(x *tx) error { return x.run(fn) })
}

func (a acceptor) View(fn func(store.ReadTx) error) error { return a.d.View(fn) }
func (a acceptor) Close() error                           { return nil }

// View runs fn in a read-only transaction on one snapshot.
func (d *DB) View(fn func(store.ReadTx) error) error { return d.view(nil, fn) }

// view is View with its scans of the replica's work limited to the shards
// owned, when not nil.
func (d *DB) view(owned []int32, fn func(store.ReadTx) error) error {
	ctx := context.Background()
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin a read: %w", err)
	}
	defer conn.Release()
	ptx := pipe.Begin(conn, `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	x := newTx(ctx, ptx, d)
	x.owned = owned
	if err := fn(x); err != nil {
		ptx.Rollback(ctx)
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		ptx.Rollback(ctx)
		return fmt.Errorf("postgres: end a read: %w", err)
	}
	return nil
}

// commitGroup runs one group commit's transaction: the callers' functions,
// then the counts they moved and COMMIT, sent together, then their
// AfterCommit functions. A failure rolls everything back.
func (d *DB) commitGroup(fn func(*tx) error) error {
	ctx := context.Background()
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin a write: %w", err)
	}
	defer conn.Release()
	ptx := pipe.Begin(conn, `BEGIN`)
	x := newTx(ctx, ptx, d)
	if err := fn(x); err != nil {
		ptx.Rollback(ctx) // the caller's error says more
		return err
	}
	x.flush()
	if err := ptx.Commit(ctx); err != nil {
		ptx.Rollback(ctx)
		// A connection lost during COMMIT leaves it unknown whether the
		// server committed: callers see an error, as for a failed write;
		// a webhook answered 500 comes again, and its dedup mark says
		// whether the first copy was kept.
		return fmt.Errorf("postgres: commit: %w", err)
	}
	for _, f := range x.after {
		f()
	}
	return nil
}

// CommitStats returns a snapshot of the group commits' counters, the
// Acceptor's and the DB's together.
func (d *DB) CommitStats() store.CommitStats {
	var cs store.CommitStats
	for _, st := range []*groupcommit.Stats{d.gc.Stats(), d.accept.Stats()} {
		cs.Commits += uint64(st.Commits.Load())
		cs.Calls += uint64(st.Calls.Load())
		cs.Commit += time.Duration(st.Nanos.Load())
		cs.Apply += time.Duration(st.FnNanos.Load())
	}
	return cs
}

// Times in columns are Unix nanoseconds, as store/bolt's keys are: 0 for
// the zero time (and anything before 1970), so that nothing is rounded.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// notFound turns pgx's no-rows into store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

var _ store.Store = (*DB)(nil)
