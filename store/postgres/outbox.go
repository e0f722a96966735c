package postgres

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonhq/baton/store"
)

// The journal keeps each event's bytes as received (bytea), beside a JSON
// header; a delivery that shares its event reads it from there.

func (x *tx) AppendJournal(j *store.JournalEntry) error {
	hdr := *j
	hdr.Event, hdr.Seq = nil, 0
	raw, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	seq, err := x.nextID(x.seqs.journal)
	if err != nil {
		return err
	}
	x.write("append journal", `INSERT INTO baton_journal (seq, received_at, page, psid, header, event) OVERRIDING SYSTEM VALUE
		VALUES ($1, $2, $3, $4, $5, $6)`, seq, nanos(j.ReceivedAt), j.Page, person(j.Page, j.Event), raw, []byte(j.Event))
	j.Seq = uint64(seq)
	return nil
}

// person is whom a journaled event is about: its sender, or the
// recipient of the page's own (an echo), so that an erase finds the
// person's entries through an index (store/bolt scans for them).
func person(page string, event json.RawMessage) string {
	var who struct {
		Sender, Recipient struct {
			ID string `json:"id"`
		}
	}
	if json.Unmarshal(event, &who) != nil {
		return ""
	}
	if who.Sender.ID == page {
		return who.Recipient.ID
	}
	return who.Sender.ID
}

func (x *tx) Journal(after uint64, limit int) ([]store.JournalEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if after >= math.MaxInt64 {
		return nil, nil
	}
	rows, err := x.t.Query(x.ctx, `SELECT seq, header, event FROM baton_journal WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: read journal: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.JournalEntry, error) {
		var j store.JournalEntry
		var seq int64
		var hdr, ev []byte
		if err := r.Scan(&seq, &hdr, &ev); err != nil {
			return j, err
		}
		if err := json.Unmarshal(hdr, &j); err != nil {
			return j, fmt.Errorf("journal entry %d: %w", seq, err)
		}
		j.Seq, j.Event = uint64(seq), ev
		return j, nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: read journal: %w", err)
	}
	return out, nil
}

// PruneJournal deletes, oldest first, entries received before before and
// older than the first one a pending delivery reads its event from.
func (x *tx) PruneJournal(before time.Time, limit int) (int, error) {
	n, err := x.exec("prune journal", `
		DELETE FROM baton_journal WHERE seq IN (
			SELECT seq FROM baton_journal
			WHERE seq < (SELECT coalesce(min(journal_seq), 9223372036854775807) FROM baton_outbox WHERE journal_seq IS NOT NULL)
			  AND received_at < $1
			ORDER BY seq LIMIT $2)`, nanos(before), max(limit, 0))
	return int(n), err
}

// stored is how a delivery's record is written: without the event when
// the journal has the same bytes (journal_seq then names the entry).
func stored(d store.Delivery) (raw []byte, journalSeq *int64, err error) {
	if d.SharesEvent && d.JournalSeq != 0 {
		d.Event = nil
		seq := int64(d.JournalSeq)
		journalSeq = &seq
	}
	raw, err = json.Marshal(d)
	return raw, journalSeq, err
}

func (x *tx) countPending(app string, delta int64) {
	if x.pending == nil {
		x.pending = map[string]int64{}
	}
	x.pending[app] += delta
}

func (x *tx) Enqueue(d *store.Delivery) error {
	id, err := x.nextID(x.seqs.delivery)
	if err != nil {
		return err
	}
	d.ID, d.Status = uint64(id), store.DeliveryPending
	if err := x.insertPending(*d, false); err != nil {
		return err
	}
	x.countPending(d.App, 1)
	return nil
}

func (x *tx) insertPending(d store.Delivery, retried bool) error {
	raw, jseq, err := stored(d)
	if err != nil {
		return err
	}
	x.write(fmt.Sprintf("enqueue delivery %d", d.ID), `
		INSERT INTO baton_outbox (id, shard, app, page, psid, attempts, created_at, next_attempt, journal_seq, retried, later_delivered, record)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		int64(d.ID), x.shard(store.ThreadKey{Page: d.Page, PSID: d.PSID}), d.App, d.Page, d.PSID, d.Attempts,
		nanos(d.CreatedAt), nanos(d.NextAttempt), jseq, retried, d.LaterDelivered, raw)
	return nil
}

// deliveryColumns read a pending or dead delivery with its event, from
// the journal when it shares it (alias o; the journal is j).
const deliveryColumns = `o.id, o.record, o.later_delivered, j.event`

func scanDelivery(r pgx.Row) (store.Delivery, error) {
	var d store.Delivery
	var id int64
	var raw, ev []byte
	var later bool
	if err := r.Scan(&id, &raw, &later, &ev); err != nil {
		return d, err
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, fmt.Errorf("delivery %d: %w", id, err)
	}
	d.ID, d.LaterDelivered = uint64(id), d.LaterDelivered || later
	if d.Event == nil && d.SharesEvent && d.JournalSeq != 0 {
		if ev == nil {
			return d, fmt.Errorf("delivery %d: journal entry %d: %w", id, d.JournalSeq, store.ErrNotFound)
		}
		d.Event = ev
	}
	return d, nil
}

func (x *tx) Delivery(id uint64) (store.Delivery, error) {
	d, err := scanDelivery(x.t.QueryRow(x.ctx, `SELECT `+deliveryColumns+` FROM baton_outbox o
		LEFT JOIN baton_journal j ON j.seq = o.journal_seq WHERE o.id = $1`, int64(id)))
	if notFound(err) == store.ErrNotFound {
		d, err = scanDelivery(x.t.QueryRow(x.ctx, `SELECT o.id, o.record, o.later_delivered, NULL::bytea FROM baton_dead o WHERE o.id = $1`, int64(id)))
	}
	if err = notFound(err); err != nil && err != store.ErrNotFound {
		err = fmt.Errorf("postgres: read delivery %d: %w", id, err)
	}
	return d, err
}

func (x *tx) deliveries(what, sql string, args ...any) ([]store.Delivery, error) {
	rows, err := x.t.Query(x.ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list %s: %w", what, err)
	}
	return out, nil
}

// PendingDeliveries and DeadDeliveries page by id (the primary key): a
// page of a million-row outbox reads a page of rows.
func (x *tx) PendingDeliveries(after uint64, limit int) ([]store.Delivery, error) {
	return x.deliveries("pending deliveries", `SELECT `+deliveryColumns+` FROM baton_outbox o
		LEFT JOIN baton_journal j ON j.seq = o.journal_seq WHERE o.id > $1 ORDER BY o.id LIMIT $2`, afterID(after), pageLimit(limit))
}

func (x *tx) DeadDeliveries(after uint64, limit int) ([]store.Delivery, error) {
	return x.deliveries("dead letters", `SELECT o.id, o.record, o.later_delivered, NULL::bytea FROM baton_dead o
		WHERE o.id > $1 ORDER BY o.id LIMIT $2`, afterID(after), pageLimit(limit))
}

// afterID is a listing's after as a bigint: ids are positive int64s, so
// one past that range lists nothing.
func afterID(after uint64) int64 { return int64(min(after, math.MaxInt64)) }

// pageLimit is a listing's limit in SQL: none (all rows) when limit <= 0.
func pageLimit(limit int) int64 {
	if limit <= 0 {
		return math.MaxInt64
	}
	return int64(limit)
}

func (x *tx) UpdateDelivery(d store.Delivery) error {
	raw, jseq, err := stored(d)
	if err != nil {
		return err
	}
	var k store.ThreadKey
	var shard int
	err = x.t.QueryRow(x.ctx, `UPDATE baton_outbox SET attempts = $2, created_at = $3, next_attempt = $4,
		journal_seq = $5, record = $6 WHERE id = $1 RETURNING page, psid, shard`, int64(d.ID), d.Attempts, nanos(d.CreatedAt),
		nanos(d.NextAttempt), jseq, raw).Scan(&k.Page, &k.PSID, &shard)
	switch notFound(err) {
	case nil:
		x.noteShard(k, shard) // the row's, whatever d says
		return nil
	case store.ErrNotFound:
		return fmt.Errorf("delivery %d: %w", d.ID, store.ErrNotFound)
	}
	return fmt.Errorf("postgres: update delivery %d: %w", d.ID, err)
}

// DeleteDelivery takes a delivered delivery out of the outbox and, in the
// same statement, marks the older deliveries of its lane that are dead,
// or pending again after a retry, as passed by it. The statement is
// queued, and what its row says (the shard written, the app's count)
// noted when it comes back: late says a fenced caller's end must wait
// for it before its fence is checked.
func (x *tx) DeleteDelivery(id uint64) error {
	x.late = true
	x.t.QueueRow(fmt.Sprintf("delete delivery %d", id), func(r pgx.Row) error {
		var app string
		var k store.ThreadKey
		var shard int
		err := r.Scan(&app, &k.Page, &k.PSID, &shard)
		switch notFound(err) {
		case nil:
			x.noteShard(k, shard)
			x.countPending(app, -1)
			return nil
		case store.ErrNotFound:
			return nil // a done mark written twice
		}
		return err
	}, `
		WITH gone AS (DELETE FROM baton_outbox WHERE id = $1 RETURNING app, page, psid, shard),
		retried AS (UPDATE baton_outbox o SET later_delivered = true FROM gone g
			WHERE o.app = g.app AND o.page = g.page AND o.psid = g.psid AND o.id < $1 AND o.retried AND NOT o.later_delivered),
		dead AS (UPDATE baton_dead o SET later_delivered = true FROM gone g
			WHERE o.app = g.app AND o.page = g.page AND o.psid = g.psid AND o.id < $1 AND NOT o.later_delivered)
		SELECT app, page, psid, shard FROM gone`, int64(id))
	return nil
}

func (x *tx) KillDelivery(d store.Delivery) error {
	var app string
	var later bool
	var k store.ThreadKey
	var shard int
	err := x.t.QueryRow(x.ctx, `DELETE FROM baton_outbox WHERE id = $1 RETURNING app, later_delivered, page, psid, shard`,
		int64(d.ID)).Scan(&app, &later, &k.Page, &k.PSID, &shard)
	if err = notFound(err); err == store.ErrNotFound {
		// Erased while it was attempted: its event must not come back as
		// a dead letter's copy.
		return fmt.Errorf("delivery %d: %w", d.ID, err)
	} else if err != nil {
		return fmt.Errorf("postgres: kill delivery %d: %w", d.ID, err)
	}
	x.noteShard(k, shard)
	x.countPending(app, -1)
	if d.Event == nil && d.SharesEvent && d.JournalSeq != 0 {
		var ev []byte
		if err := x.t.QueryRow(x.ctx, `SELECT event FROM baton_journal WHERE seq = $1`, int64(d.JournalSeq)).Scan(&ev); err != nil {
			return fmt.Errorf("postgres: delivery %d: journal entry %d: %w", d.ID, d.JournalSeq, notFound(err))
		}
		d.Event = ev
	}
	d.Status, d.SharesEvent, d.LaterDelivered = store.DeliveryDead, false, d.LaterDelivered || later
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	x.write(fmt.Sprintf("kill delivery %d", d.ID), `INSERT INTO baton_dead (id, shard, app, page, psid, later_delivered, record)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, int64(d.ID), x.shard(store.ThreadKey{Page: d.Page, PSID: d.PSID}), d.App, d.Page, d.PSID, d.LaterDelivered, raw)
	return nil
}

func (x *tx) ReviveDelivery(id uint64, now time.Time) (store.Delivery, error) {
	d, err := scanDelivery(x.t.QueryRow(x.ctx, `DELETE FROM baton_dead o WHERE id = $1 RETURNING o.id, o.record, o.later_delivered, NULL::bytea`, int64(id)))
	if err = notFound(err); err != nil {
		if err == store.ErrNotFound {
			return d, fmt.Errorf("dead delivery %d: %w", id, err)
		}
		return d, fmt.Errorf("postgres: revive delivery %d: %w", id, err)
	}
	d.RetriedDeadAt = d.DeadAt
	d.Status, d.Attempts, d.NextAttempt, d.DeadAt = store.DeliveryPending, 0, now, time.Time{}
	if err := x.insertPending(d, true); err != nil {
		return d, err
	}
	x.countPending(d.App, 1)
	return d, nil
}

func (x *tx) CountPending() (map[string]int, error) {
	rows, err := x.t.Query(x.ctx, `SELECT app, n FROM baton_pending_counts`)
	if err != nil {
		return nil, fmt.Errorf("postgres: count pending: %w", err)
	}
	out := map[string]int{}
	for rows.Next() {
		var app string
		var n int64
		if err := rows.Scan(&app, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: count pending: %w", err)
		}
		out[app] = int(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count pending: %w", err)
	}
	for app, delta := range x.pending { // this transaction's own, not yet written
		if n := out[app] + int(delta); n > 0 {
			out[app] = n
		} else {
			delete(out, app)
		}
	}
	return out, nil
}

func scanHead(r pgx.CollectableRow) (store.LaneHead, error) {
	var h store.LaneHead
	var id, created, next int64
	if err := r.Scan(&h.Page, &h.PSID, &id, &h.Attempts, &created, &next); err != nil {
		return h, err
	}
	h.ID, h.CreatedAt, h.NextAttempt = uint64(id), fromNanos(created), fromNanos(next)
	return h, nil
}

func (x *tx) heads(sql string, args ...any) ([]store.LaneHead, error) {
	rows, err := x.t.Query(x.ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: lanes: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanHead)
	if err != nil {
		return nil, fmt.Errorf("postgres: lanes: %w", err)
	}
	return out, nil
}

func (x *tx) Lanes(app string, after store.ThreadKey, limit int) ([]store.LaneHead, error) {
	q := `SELECT DISTINCT ON (page, psid) page, psid, id, attempts, created_at, next_attempt FROM baton_outbox WHERE app = $1`
	args := []any{app, max(limit, 0)}
	if after != (store.ThreadKey{}) { // the zero key is before every thread, even one of an empty page
		q += ` AND (page, psid) > ($3, $4)`
		args = append(args, after.Page, after.PSID)
	}
	return x.heads(q+x.onlyOwned(&args)+` ORDER BY page, psid, id LIMIT $2`, args...)
}

func (x *tx) LanePending(app string, k store.ThreadKey, limit int) ([]store.LaneHead, error) {
	return x.heads(`SELECT page, psid, id, attempts, created_at, next_attempt FROM baton_outbox
		WHERE app = $1 AND page = $2 AND psid = $3 ORDER BY id LIMIT $4`, app, k.Page, k.PSID, max(limit, 0))
}
