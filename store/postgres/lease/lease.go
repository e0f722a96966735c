// Package lease keeps the shard leases and the replica heartbeats of
// Baton's PostgreSQL store (store/postgres, which creates their tables),
// and the fence a write checks them by in its own transaction.
//
// Shard leases live in baton_shards, one row per shard; every statement on
// them reads the database's clock, clock_timestamp(), never the replica's.
// The pattern is Temporal's SQL shard ownership, as SCALEOUT.md §4.3
// measured it here: an acquire bumps the epoch; a fenced transaction locks
// its shards' rows (FOR KEY SHARE) after its writes and before COMMIT, and
// finds them still at its epoch, its owner and not run out, or rolls back.
// An acquire locks the row FOR UPDATE, the one lock that conflicts with
// FOR KEY SHARE, so it waits for a fenced COMMIT in flight: in commit
// order, every write of epoch e comes before the acquire of e+1. Renewals
// and releases change no key, so they take FOR NO KEY UPDATE, which a
// fence's lock shares: the holder's renewal of all its leases, one
// statement, never waits for its own fenced transactions. (With FOR SHARE
// it did, and a group commit's fences, one statement per caller in no
// order, and the renewal waited for each other until PostgreSQL's deadlock
// detection failed one of them.)
package lease

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonhq/baton/store"
)

// IdleBound bounds how long a fenced transaction may sit idle on the
// server (its process paused between the fence and COMMIT, with the rows
// locked): past it the server ends the session and rolls back, so an
// acquire waits at most this long for a frozen holder. A live process
// sends its next statement within milliseconds.
const IdleBound = 2 * time.Second

// Table is the lease rows and heartbeats of one database (or schema: the
// one the pool's connections' search_path names), whose baton_shards has
// one row for each of shards.
type Table struct {
	pool   *pgxpool.Pool
	shards int
}

// New is the leases and heartbeats pool reaches.
func New(pool *pgxpool.Pool, shards int) *Table { return &Table{pool: pool, shards: shards} }

// ttlMicros is d in microseconds, PostgreSQL's resolution.
func ttlMicros(d time.Duration) int64 { return d.Microseconds() }

func checkShard(shard, shards int) error {
	if shard < 0 || shard >= shards {
		return fmt.Errorf("postgres: shard %d: want 0 to %d", shard, shards-1)
	}
	return nil
}

func checkReplica(replica string) error {
	if replica == "" {
		return errors.New("postgres: a lease needs the replica's id")
	}
	return nil
}

// deadline is the local deadline of a lease whose statement was sent at
// sent: by the monotonic clock, TTL minus margin later.
func deadline(sent time.Time, terms store.LeaseTerms) time.Time {
	return sent.Add(terms.TTL - terms.Margin)
}

// Acquire takes shard for replica if its lease is free or ran out, at the
// next epoch; store.ErrLeaseHeld while a lease on it holds (replica's own
// too: renew that one).
func (t *Table) Acquire(ctx context.Context, replica string, shard int, terms store.LeaseTerms) (store.Lease, error) {
	if err := errors.Join(checkReplica(replica), checkShard(shard, t.shards), terms.Check()); err != nil {
		return store.Lease{}, err
	}
	sent := time.Now()
	var epoch int64
	// FOR UPDATE first: the UPDATE alone, of no key, would take a lock
	// that a fenced transaction's shares, and not wait for its COMMIT. One
	// statement, so that no acquirer can freeze between the two holding
	// the row.
	err := t.pool.QueryRow(ctx, `
		WITH free AS (
			SELECT shard FROM baton_shards WHERE shard = $1 AND expires_at <= clock_timestamp() FOR UPDATE
		)
		UPDATE baton_shards s SET owner = $2, epoch = s.epoch + 1,
			expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond'
		FROM free WHERE s.shard = free.shard AND s.expires_at <= clock_timestamp()
		RETURNING s.epoch`, shard, replica, ttlMicros(terms.TTL)).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Lease{}, fmt.Errorf("postgres: acquire shard %d: %w", shard, store.ErrLeaseHeld)
	}
	if err != nil {
		return store.Lease{}, fmt.Errorf("postgres: acquire shard %d: %w", shard, err)
	}
	return store.Lease{Shard: shard, Owner: replica, Epoch: epoch, Deadline: deadline(sent, terms)}, nil
}

// Renew extends l by terms.TTL from now, by the database's clock, while l
// is still the shard's and has not run out; store.ErrFenced otherwise. The
// returned lease has the new local deadline.
func (t *Table) Renew(ctx context.Context, l store.Lease, terms store.LeaseTerms) (store.Lease, error) {
	if err := errors.Join(checkReplica(l.Owner), checkShard(l.Shard, t.shards), terms.Check()); err != nil {
		return store.Lease{}, err
	}
	sent := time.Now()
	tag, err := t.pool.Exec(ctx, `
		UPDATE baton_shards SET expires_at = clock_timestamp() + $4::bigint * interval '1 microsecond'
		WHERE shard = $1 AND owner = $2 AND epoch = $3 AND expires_at > clock_timestamp()`,
		l.Shard, l.Owner, l.Epoch, ttlMicros(terms.TTL))
	if err != nil {
		return store.Lease{}, fmt.Errorf("postgres: renew %s: %w", l, err)
	}
	if tag.RowsAffected() == 0 {
		return store.Lease{}, fmt.Errorf("postgres: renew %s: %w", l, store.ErrFenced)
	}
	l.Deadline = deadline(sent, terms)
	return l, nil
}

// RenewMany renews, in one statement, each of leases that Renew would:
// still its shard's, at its owner and epoch, and not run out, by the
// database's clock. It reports those renewed, with their new local
// deadline, and those lost (the holder must stop acting for them), each
// in the order of leases.
func (t *Table) RenewMany(ctx context.Context, leases []store.Lease, terms store.LeaseTerms) (renewed, lost []store.Lease, err error) {
	if err := terms.Check(); err != nil {
		return nil, nil, err
	}
	f, err := NewFence(leases, t.shards) // the same arrays, and the same checks
	if err != nil || len(leases) == 0 {
		return nil, nil, err
	}
	sent := time.Now()
	rows, err := t.pool.Query(ctx, `
		UPDATE baton_shards s SET expires_at = clock_timestamp() + $4::bigint * interval '1 microsecond'
		FROM unnest($1::int[], $2::bigint[], $3::text[]) AS f(shard, epoch, owner)
		WHERE s.shard = f.shard AND s.epoch = f.epoch AND s.owner = f.owner AND s.expires_at > clock_timestamp()
		RETURNING s.shard`, f.shard, f.epoch, f.owner, ttlMicros(terms.TTL))
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: renew %d leases: %w", len(leases), err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: renew %d leases: %w", len(leases), err)
	}
	ok := map[int]bool{}
	for _, s := range held {
		ok[s] = true
	}
	for _, l := range leases {
		if ok[l.Shard] {
			l.Deadline = deadline(sent, terms)
			renewed = append(renewed, l)
		} else {
			lost = append(lost, l)
		}
	}
	return renewed, lost, nil
}

// Release ends l now, by the database's clock, so that the next Acquire
// of the shard (any replica's) succeeds at once; store.ErrFenced if l was
// no longer the shard's. The row keeps its owner and epoch, for Leases to
// show who held it last.
func (t *Table) Release(ctx context.Context, l store.Lease) error {
	if err := errors.Join(checkReplica(l.Owner), checkShard(l.Shard, t.shards)); err != nil {
		return err
	}
	tag, err := t.pool.Exec(ctx, `
		UPDATE baton_shards SET expires_at = clock_timestamp()
		WHERE shard = $1 AND owner = $2 AND epoch = $3 AND expires_at > clock_timestamp()`,
		l.Shard, l.Owner, l.Epoch)
	if err != nil {
		return fmt.Errorf("postgres: release %s: %w", l, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: release %s: %w", l, store.ErrFenced)
	}
	return nil
}

// Leases lists every shard's lease row, by shard.
func (t *Table) Leases(ctx context.Context) ([]store.ShardLease, error) {
	rows, err := t.pool.Query(ctx, `
		SELECT shard, owner, epoch, expires_at, expires_at > clock_timestamp()
		FROM baton_shards ORDER BY shard`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list the leases: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ShardLease, error) {
		var l store.ShardLease
		var exp pgtype.Timestamptz
		err := r.Scan(&l.Shard, &l.Owner, &l.Epoch, &exp, &l.Held)
		l.ExpiresAt = fromTimestamptz(exp)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list the leases: %w", err)
	}
	return out, nil
}

// Fence is the leases of one fenced write, as arrays for one statement.
type Fence struct {
	shards map[int]bool
	shard  []int32
	epoch  []int64
	owner  []string
}

// NewFence is the fence of leases (none is a fence of no shard), each of
// one of shards, none twice.
func NewFence(leases []store.Lease, shards int) (*Fence, error) {
	f := &Fence{shards: map[int]bool{}}
	for _, l := range leases {
		if err := errors.Join(checkReplica(l.Owner), checkShard(l.Shard, shards)); err != nil {
			return nil, err
		}
		if f.shards[l.Shard] {
			return nil, fmt.Errorf("postgres: the leases name shard %d twice", l.Shard)
		}
		f.shards[l.Shard] = true
		f.shard = append(f.shard, int32(l.Shard))
		f.epoch = append(f.epoch, l.Epoch)
		f.owner = append(f.owner, l.Owner)
	}
	return f, nil
}

// Holds says whether one of f's leases is shard's.
func (f *Fence) Holds(shard int) bool { return f.shards[shard] }

// Shards are f's shards, in the order of its leases.
func (f *Fence) Shards() []int32 { return f.shard }

// Len is the number of f's leases.
func (f *Fence) Len() int { return len(f.shard) }

// Only is f's leases of shards.
func (f *Fence) Only(shards map[int]bool) *Fence {
	o := &Fence{shards: map[int]bool{}}
	for i, s := range f.shard {
		if shards[int(s)] {
			o.shards[int(s)] = true
			o.shard, o.epoch, o.owner = append(o.shard, s), append(o.epoch, f.epoch[i]), append(o.owner, f.owner[i])
		}
	}
	return o
}

// Tx is the transaction a fence is checked in: store/postgres's, which
// queues a write whose result is not read (Queue) and sends it with the
// next statement, in one round trip.
type Tx interface {
	Queue(what, sql string, args ...any)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Check locks, in tx, the rows of f's shards that still hold its leases
// (FOR KEY SHARE: an acquire waits for it, a renewal does not) and fails
// with store.ErrFenced, naming the shards lost, unless all do.
func Check(ctx context.Context, tx Tx, f *Fence) error {
	rows, err := tx.Query(ctx, `
		SELECT s.shard FROM baton_shards s
		JOIN unnest($1::int[], $2::bigint[], $3::text[]) AS f(shard, epoch, owner)
			ON s.shard = f.shard AND s.epoch = f.epoch AND s.owner = f.owner
		WHERE s.expires_at > clock_timestamp()
		FOR KEY SHARE OF s`, f.shard, f.epoch, f.owner)
	if err != nil {
		return fmt.Errorf("postgres: check the leases: %w", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("postgres: check the leases: %w", err)
	}
	if len(held) == len(f.shard) {
		return nil
	}
	ok := map[int]bool{}
	for _, s := range held {
		ok[s] = true
	}
	var lost []int
	for s := range f.shards {
		if !ok[s] {
			lost = append(lost, s)
		}
	}
	sort.Ints(lost)
	return fmt.Errorf("postgres: the leases of shards %v: %w", lost, store.ErrFenced)
}

// BoundIdle sets tx's idle timeout to IdleBound, before its first Check
// (queued: it goes with the Check).
func BoundIdle(tx Tx) {
	tx.Queue("bound the fenced transaction's idle time", `SELECT set_config('idle_in_transaction_session_timeout', $1, true)`,
		fmt.Sprint(IdleBound.Milliseconds()))
}

// Heartbeat records that replica is alive and reachable at addr for ttl,
// by the database's clock.
func (t *Table) Heartbeat(ctx context.Context, replica, addr string, ttl time.Duration) error {
	if err := checkReplica(replica); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("postgres: heartbeat TTL %v: want more than 0", ttl)
	}
	if _, err := t.pool.Exec(ctx, `
		INSERT INTO baton_replicas (id, addr, expires_at) VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 microsecond')
		ON CONFLICT (id) DO UPDATE SET addr = EXCLUDED.addr, expires_at = EXCLUDED.expires_at`,
		replica, addr, ttlMicros(ttl)); err != nil {
		return fmt.Errorf("postgres: heartbeat of %s: %w", replica, err)
	}
	return nil
}

// Replicas lists the replicas that ever beat, by id.
func (t *Table) Replicas(ctx context.Context) ([]store.Replica, error) {
	rows, err := t.pool.Query(ctx, `
		SELECT id, addr, expires_at, expires_at > clock_timestamp() FROM baton_replicas ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list the replicas: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Replica, error) {
		var m store.Replica
		var exp pgtype.Timestamptz
		err := r.Scan(&m.ID, &m.Addr, &exp, &m.Live)
		m.ExpiresAt = fromTimestamptz(exp)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list the replicas: %w", err)
	}
	return out, nil
}

// Leave ends replica's heartbeat now, by the database's clock: a graceful
// leave, so that the others count it out and rebalance at once, not after
// its TTL. It releases no lease (Release does); a replica that never beat,
// or already left, is no error, and its next Heartbeat brings it back.
func (t *Table) Leave(ctx context.Context, replica string) error {
	if err := checkReplica(replica); err != nil {
		return err
	}
	if _, err := t.pool.Exec(ctx, `UPDATE baton_replicas SET expires_at = least(expires_at, clock_timestamp()) WHERE id = $1`,
		replica); err != nil {
		return fmt.Errorf("postgres: leave of %s: %w", replica, err)
	}
	return nil
}

// fromTimestamptz is v as a time, the zero time for -infinity (a lease
// never held).
func fromTimestamptz(v pgtype.Timestamptz) time.Time {
	if !v.Valid || v.InfinityModifier != pgtype.Finite {
		return time.Time{}
	}
	return v.Time.UTC()
}
