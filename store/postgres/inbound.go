package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/batonhq/baton/store"
)

// The inbound queue, baton_inbound (migration 0003): any replica appends
// the webhooks it accepted, under no lease; the owner of an entry's shard
// reads its shards' oldest (PendingInbound) and deletes each entry in the
// fenced transaction that routes it. A transaction that appended sends
// one NOTIFY, which PostgreSQL delivers to every listening session at
// COMMIT, and only if it commits: a listener woken finds the entries.
//
// The NOTIFY's cost (SCALEOUT.md §2.2) is a lock that every notifying
// COMMIT of the server (all its databases) takes in turn and holds until
// it is durable: the commits that append inbound entries, one a group
// commit however many webhooks it holds, line up behind one another
// across the replicas; the other commits are not affected.

// inboundChannel is the NOTIFY's channel. Its payload is the schema, so
// that the stores of other schemas on the database ignore it.
const inboundChannel = "baton_inbound"

// AppendInbound queues e and assigns its Seq. e.Shard must be its
// thread's (any for a page-level event, PSID ""): its owner routes it.
func (x *tx) AppendInbound(e *store.InboundEntry) error {
	if e.Shard < 0 || e.Shard >= x.shards {
		return fmt.Errorf("postgres: inbound entry for shard %d: want 0 to %d", e.Shard, x.shards-1)
	}
	if k := (store.ThreadKey{Page: e.Page, PSID: e.PSID}); e.PSID != "" && shardOf(k, x.shards) != e.Shard {
		return fmt.Errorf("postgres: inbound entry of thread %s for shard %d: the thread is in shard %d", k, e.Shard, shardOf(k, x.shards))
	}
	seq, err := x.nextID(x.seqs.inbound)
	if err != nil {
		return err
	}
	x.write("append inbound entry", `INSERT INTO baton_inbound (seq, shard, app, page, psid, channel, received_at, event)
		OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, seq, e.Shard, e.App, e.Page, e.PSID, e.Channel,
		nanos(e.ReceivedAt), []byte(e.Event))
	e.Seq = uint64(seq)
	x.notify = true
	return nil
}

// DeleteInbound removes a routed entry, as PendingInbound read it (its
// Seq and its Shard, which must be its row's); inside a fenced update,
// its shard must be one of the leases'. An entry already gone is
// store.ErrNotFound: it was routed by a commit whose outcome the caller
// did not learn, and must not be routed twice. The delete is queued (it
// goes with the transaction's next statement, or at the caller's end),
// and so is that error: that statement fails with it, and so does the
// caller's Update, whatever the caller made of it.
func (x *tx) DeleteInbound(e store.InboundEntry) error {
	x.noteShard(store.ThreadKey{Page: e.Page, PSID: e.PSID}, e.Shard)
	x.t.QueueChecked(fmt.Sprintf("delete inbound entry %d", e.Seq), func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("inbound entry %d: %w", e.Seq, store.ErrNotFound)
		}
		return nil
	}, `DELETE FROM baton_inbound WHERE seq = $1 AND shard = $2`, int64(min(e.Seq, 1<<63-1)), e.Shard)
	return nil
}

// PendingInbound lists the oldest entries of shards, in Seq order, at
// most limit (all when limit <= 0).
func (d *DB) PendingInbound(ctx context.Context, shards []int, limit int) ([]store.InboundEntry, error) {
	if len(shards) == 0 {
		return nil, nil
	}
	of := make([]int32, len(shards))
	for i, s := range shards {
		of[i] = int32(s)
	}
	rows, err := d.pool.Query(ctx, `SELECT seq, shard, app, page, psid, channel, received_at, event FROM baton_inbound
		WHERE shard = ANY($1::int[]) ORDER BY seq LIMIT $2`, of, pageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: pending inbound entries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.InboundEntry, error) {
		var e store.InboundEntry
		var seq, at int64
		var ev []byte
		err := r.Scan(&seq, &e.Shard, &e.App, &e.Page, &e.PSID, &e.Channel, &at, &ev)
		e.Seq, e.ReceivedAt, e.Event = uint64(seq), fromNanos(at), ev
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: pending inbound entries: %w", err)
	}
	return out, nil
}

// ListenInbound calls wake once it listens (entries appended before were
// not told: the caller reads the queue then), and whenever a transaction
// that appended entries commits, on any store of the schema, until ctx
// ends (ctx's error) or the connection breaks (its error). wake runs on
// the listener's goroutine: it must be quick (a send that does not
// block), and a burst of commits may wake it as many times. It holds a
// connection of its own (package listen), and Close ends it (its error
// wraps groupcommit.ErrClosed, as Update's after Close does).
func (d *DB) ListenInbound(ctx context.Context, wake func()) error {
	return d.hub.Listen(ctx, inboundChannel, d.schema, wake)
}

var (
	_ store.InboundTx = (*tx)(nil)
	_ store.Inbound   = (*DB)(nil)
)
