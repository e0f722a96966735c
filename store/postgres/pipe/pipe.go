// Package pipe runs one PostgreSQL transaction in fewer round trips, for
// Baton's store (store/postgres). A write whose result the transaction
// does not read back is queued (Queue) instead of sent: the queue goes
// with the next statement that reads, in one pipelined batch, or with
// Flush, or with the COMMIT. So does the BEGIN, which Begin queues. The
// values of sequences such an insert assigns are reserved in blocks
// (NextVal), so that it need not read them back.
//
// The rule that keeps it a transaction like any other: every statement
// goes through the Tx, in the order it was called, and a statement that
// reads (Exec, Query, QueryRow) is sent after every write queued before
// it, in the same batch: it sees them, as it would have unqueued. A
// queued write that fails fails the statement that carried it, and every
// later one (the server aborted the transaction anyway); the caller that
// queued it learns of it at the latest at its Flush, so a write must be
// flushed before its caller is told it succeeded.
package pipe

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Conn is what a Tx runs on: a pooled connection, out of any transaction.
type Conn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Tx is one transaction on a Conn. Its methods take a context, as pgx's
// do, so that it serves where a pgx.Tx would; they are not safe for
// concurrent use.
type Tx struct {
	c Conn
	b *pgx.Batch
	q []queued // what b holds, but for the statement sent with it
	// sent says the BEGIN went to the server (something to roll back);
	// err, the failure of a queued write, which every later call returns.
	sent bool
	err  error
	// vals are the values reserved of each sequence (NextVal), not yet
	// handed out.
	vals map[string]*reserved
}

// Begin is a transaction on c, begun by begin ("BEGIN", or with its
// isolation and access mode), which is queued: it goes with the first
// statement.
func Begin(c Conn, begin string) *Tx {
	t := &Tx{c: c, b: &pgx.Batch{}}
	t.Queue("begin a transaction", begin)
	return t
}

// queued is a statement in the queue: what names it in its error; check
// judges its command tag, or scan reads its row, when either is set.
type queued struct {
	what  string
	check func(pgconn.CommandTag) error
	scan  func(pgx.Row) error
}

// Queue queues a write whose result the transaction does not read; what
// names it in its error.
func (t *Tx) Queue(what, sql string, args ...any) { t.push(queued{what: what}, sql, args) }

// QueueChecked is Queue with check, which judges the write's command tag
// when it comes back (a row it should have found): an error of check
// fails the transaction as a failed write does.
func (t *Tx) QueueChecked(what string, check func(pgconn.CommandTag) error, sql string, args ...any) {
	t.push(queued{what: what, check: check}, sql, args)
}

// QueueRow queues a write whose one row (RETURNING) scan reads when it
// comes back, for what the transaction does with it before its end: scan
// is given pgx.ErrNoRows when there is none, and an error it returns
// fails the transaction as a failed write does.
func (t *Tx) QueueRow(what string, scan func(pgx.Row) error, sql string, args ...any) {
	t.push(queued{what: what, scan: scan}, sql, args)
}

func (t *Tx) push(q queued, sql string, args []any) {
	t.b.Queue(sql, args...)
	t.q = append(t.q, q)
}

// Queued is how many statements wait to be sent.
func (t *Tx) Queued() int { return t.b.Len() }

// send sends the queue with sql, when not "", last: it returns the
// results positioned at sql's, which the caller reads and then closes.
func (t *Tx) send(ctx context.Context, sql string, args ...any) (pgx.BatchResults, error) {
	if t.err != nil {
		return nil, t.err
	}
	b, qs := t.b, t.q
	t.b, t.q, t.sent = &pgx.Batch{}, nil, true
	if sql != "" {
		b.Queue(sql, args...)
	}
	br := t.c.SendBatch(ctx, b)
	for _, q := range qs {
		var err error
		if q.scan != nil {
			err = q.scan(br.QueryRow())
		} else {
			var tag pgconn.CommandTag
			if tag, err = br.Exec(); err == nil && q.check != nil {
				err = q.check(tag)
			}
		}
		if err != nil {
			_ = br.Close()
			t.err = fmt.Errorf("postgres: %s: %w", q.what, err)
			return nil, t.err
		}
	}
	return br, nil
}

// Flush sends what is queued, and reports the first write that failed.
func (t *Tx) Flush(ctx context.Context) error {
	if t.b.Len() == 0 {
		return t.err
	}
	br, err := t.send(ctx, "")
	if err != nil {
		return err
	}
	return br.Close()
}

// Exec runs sql after what is queued.
func (t *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.err != nil {
		return pgconn.CommandTag{}, t.err
	}
	if t.b.Len() == 0 {
		return t.c.Exec(ctx, sql, args...)
	}
	br, err := t.send(ctx, sql, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	return tag, errors.Join(err, br.Close())
}

// QueryRow reads one row of sql, sent after what is queued.
func (t *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.err != nil {
		return errRow{t.err}
	}
	if t.b.Len() == 0 {
		return t.c.QueryRow(ctx, sql, args...)
	}
	br, err := t.send(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return batchRow{br.QueryRow(), br}
}

// Query reads the rows of sql, sent after what is queued.
func (t *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.err != nil {
		return nil, t.err
	}
	if t.b.Len() == 0 {
		return t.c.Query(ctx, sql, args...)
	}
	br, err := t.send(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, errors.Join(err, br.Close())
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// Commit sends what is queued and COMMIT together (nothing when only the
// BEGIN is: the server never saw the transaction).
func (t *Tx) Commit(ctx context.Context) error {
	if !t.sent && t.b.Len() == 1 {
		t.b, t.q = &pgx.Batch{}, nil
		return nil
	}
	tag, err := t.Exec(ctx, "COMMIT")
	if err != nil {
		return err // Rollback ends the transaction
	}
	t.sent = false // answered: the transaction is over
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// Rollback drops what is queued and rolls back what was sent. A
// connection it leaves in a transaction (the server unreachable) is one
// the pool closes at release.
func (t *Tx) Rollback(ctx context.Context) {
	t.b, t.q = &pgx.Batch{}, nil
	if t.sent {
		_, _ = t.c.Exec(ctx, "ROLLBACK")
	}
}

// reserved is what is left of the values taken from a sequence, and how
// many the next reservation takes.
type reserved struct {
	vals []int64
	next int
}

// NextVal is the next value of sequence seq (a name regclass takes) for
// the caller's insert, so that the insert can be queued. Values are
// reserved a block at a time, 8 then twice as many each time up to 256,
// so that a batch of inserts reads a block rather than a value each;
// those the transaction does not use are a gap, as a rollback leaves.
// They grow, within a transaction and from one to the next, as nextval's
// do.
func (t *Tx) NextVal(ctx context.Context, seq string) (int64, error) {
	if t.vals == nil {
		t.vals = map[string]*reserved{}
	}
	r := t.vals[seq]
	if r == nil {
		r = &reserved{next: 8}
		t.vals[seq] = r
	}
	if len(r.vals) == 0 {
		rows, err := t.Query(ctx, `SELECT nextval($1::regclass) AS v FROM generate_series(1, $2) ORDER BY v`, seq, r.next)
		if err == nil {
			r.vals, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		}
		if err == nil && len(r.vals) == 0 {
			err = errors.New("no values")
		}
		if err != nil {
			return 0, err
		}
		r.next = min(2*r.next, 256)
	}
	v := r.vals[0]
	r.vals = r.vals[1:]
	return v, nil
}

// errRow is a row whose statement could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// batchRow is the last result of a batch, which its Scan closes.
type batchRow struct {
	row pgx.Row
	br  pgx.BatchResults
}

func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// batchRows are the rows of a batch's last result: the batch closes with
// them (at their end, or at Close).
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}
