package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/postgres/lease"
	"github.com/batonhq/baton/store/postgres/pipe"
)

// tx implements store.Tx over one PostgreSQL transaction: a View's
// (read-only, one snapshot) or a group commit's. Like store/bolt's, it
// caches the threads it read and keeps the counts it moved until flush,
// which writes them once per commit.
//
// Its writes go through package pipe: one whose result is not read back
// (write) is queued and sent with the transaction's next statement, which
// sees it; the ids and seqs such a write assigns are reserved in blocks
// (nextID), after the transaction began, so after every caller of its
// group had asked to write: an inbound entry or a delivery written after
// another committed still has the greater seq or id. Every caller's queue is flushed before its function's end is
// reported to the group commit (Update, fenced), so that a write that
// fails fails its own caller, whom the group takes out.
type tx struct {
	ctx     context.Context
	t       *pipe.Tx
	shards  int
	after   []func()
	threads map[store.ThreadKey]store.Thread
	absent  map[store.ThreadKey]bool // read, and not there (PrefetchThreads)
	counts  map[countKey]int64       // threads per (shard, state)
	pending map[string]int64         // pending deliveries per app
	// fence is the leases of a fenced caller (UpdateFenced, a scope's
	// Update) while its function runs (nil otherwise); fenceErr, its first
	// write outside them; touched, the shards it wrote rows of;
	// idleBounded, that the transaction's idle timeout is set.
	fence       *lease.Fence
	fenceErr    error
	touched     map[int]bool
	idleBounded bool
	// owned limits the scans of the replica's own work (lanes, timers,
	// jobs, intents) to a scope's shards (nil: every shard).
	owned []int32
	// schema names the store's schema in the NOTIFY of inbound entries;
	// notify, that the transaction appended one.
	schema string
	notify bool
	// seqs name the sequences whose values inserts reserve (nextID).
	seqs *sequences
	// late says a queued statement notes the shard it wrote when its row
	// comes back (DeleteDelivery).
	late bool
}

type countKey struct {
	shard int
	state string
}

func newTx(ctx context.Context, t *pipe.Tx, d *DB) *tx {
	return &tx{ctx: ctx, t: t, shards: d.shards, schema: d.schema, seqs: &d.seqs}
}

// write queues a write whose result the transaction does not read.
func (x *tx) write(what, sql string, args ...any) { x.t.Queue(what, sql, args...) }

// nextID is the next value of sequence seq for an insert of this
// transaction (pipe.Tx.NextVal: reserved in blocks).
func (x *tx) nextID(seq string) (int64, error) {
	id, err := x.t.NextVal(x.ctx, seq)
	if err != nil {
		return 0, fmt.Errorf("postgres: reserve values of %s: %w", seq, err)
	}
	return id, nil
}

// onlyOwned is the condition that limits a scan of the replica's own work
// to a scoped transaction's shards, their array appended to args; "" in
// any other transaction.
func (x *tx) onlyOwned(args *[]any) string {
	if x.owned == nil {
		return ""
	}
	*args = append(*args, x.owned)
	return ` AND shard = ANY($` + strconv.Itoa(len(*args)) + `::int[])`
}

// shard is the shard of a row written for thread k.
func (x *tx) shard(k store.ThreadKey) int {
	s := shardOf(k, x.shards)
	x.noteShard(k, s)
	return s
}

// AfterCommit runs fn once COMMIT returned, before the group's callers are
// released; a group that rolls back drops it with the rest.
func (x *tx) AfterCommit(fn func()) { x.after = append(x.after, fn) }

func (x *tx) exec(what, sql string, args ...any) (int64, error) {
	tag, err := x.t.Exec(x.ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", what, err)
	}
	return tag.RowsAffected(), nil
}

// record reads one JSON record into v: store.ErrNotFound when there is
// no row.
func record[T any](x *tx, what, sql string, args ...any) (T, error) {
	var v T
	var raw []byte
	if err := x.t.QueryRow(x.ctx, sql, args...).Scan(&raw); err != nil {
		if err = notFound(err); err == store.ErrNotFound {
			return v, err
		}
		return v, fmt.Errorf("postgres: read %s: %w", what, err)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("postgres: decode %s: %w", what, err)
	}
	return v, nil
}

// records reads every row's JSON record.
func records[T any](x *tx, what, sql string, args ...any) ([]T, error) {
	rows, err := x.t.Query(x.ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("postgres: list %s: %w", what, err)
		}
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("postgres: decode %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list %s: %w", what, err)
	}
	return out, nil
}

func (x *tx) Thread(k store.ThreadKey) (store.Thread, error) {
	if t, ok := x.threads[k]; ok {
		return t, nil
	}
	if x.absent[k] {
		return store.Thread{}, store.ErrNotFound
	}
	t, err := record[store.Thread](x, "thread", `SELECT record FROM baton_threads WHERE page = $1 AND psid = $2`, k.Page, k.PSID)
	if err == nil {
		x.cacheThread(t)
	}
	return t, err
}

func (x *tx) cacheThread(t store.Thread) {
	if x.threads == nil {
		x.threads = map[store.ThreadKey]store.Thread{}
	}
	x.threads[t.ThreadKey] = t
	delete(x.absent, t.ThreadKey)
}

// PrefetchThreads reads the threads of keys not read yet, in one
// statement, into the transaction's cache, and remembers the keys that
// have none: the Thread reads of a batch of events routed next are not a
// round trip each. The cache is the one Thread keeps: a thread is
// written by its shard's owner alone, through this transaction.
func (x *tx) PrefetchThreads(keys []store.ThreadKey) error {
	var pages, psids []string
	for _, k := range keys {
		if _, ok := x.threads[k]; !ok && !x.absent[k] {
			pages, psids = append(pages, k.Page), append(psids, k.PSID)
		}
	}
	if len(pages) == 0 {
		return nil
	}
	found, err := records[store.Thread](x, "threads", `SELECT t.record FROM baton_threads t
		JOIN unnest($1::text[], $2::text[]) AS k(page, psid) ON t.page = k.page AND t.psid = k.psid`, pages, psids)
	if err != nil {
		return err
	}
	if x.absent == nil {
		x.absent = map[store.ThreadKey]bool{}
	}
	for i := range pages {
		x.absent[store.ThreadKey{Page: pages[i], PSID: psids[i]}] = true
	}
	for _, t := range found {
		x.cacheThread(t)
	}
	return nil
}

func (x *tx) count(shard int, state string, delta int64) {
	if x.counts == nil {
		x.counts = map[countKey]int64{}
	}
	x.counts[countKey{shard, state}] += delta
}

// PutThread keeps store/bolt's timer rule: a later expiry keeps the
// earlier timer, an earlier one moves it, none drops it.
func (x *tx) PutThread(t store.Thread) error {
	old, err := x.Thread(t.ThreadKey)
	isNew := err == store.ErrNotFound
	if err != nil && !isNew {
		return err
	}
	shard := x.shard(t.ThreadKey)
	if isNew || old.State != t.State {
		if !isNew {
			x.count(shard, string(old.State), -1)
		}
		x.count(shard, string(t.State), 1)
	}
	t.TimerAt = old.TimerAt
	switch needs := t.Owner != "" && !t.ExpiresAt.IsZero(); {
	case needs && (t.TimerAt.IsZero() || t.ExpiresAt.Before(t.TimerAt)):
		t.TimerAt = t.ExpiresAt
	case !needs:
		t.TimerAt = time.Time{}
	}
	return x.writeThread(t, shard)
}

func (x *tx) writeThread(t store.Thread, shard int) error {
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	var timer *int64
	if !t.TimerAt.IsZero() {
		n := nanos(t.TimerAt)
		timer = &n
	}
	x.write("write thread "+t.ThreadKey.String(), `
		INSERT INTO baton_threads (page, psid, shard, state, owner, timer_at, record) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (page, psid) DO UPDATE SET state = EXCLUDED.state, owner = EXCLUDED.owner,
			timer_at = EXCLUDED.timer_at, record = EXCLUDED.record`,
		t.Page, t.PSID, shard, string(t.State), t.Owner, timer, raw)
	x.cacheThread(t)
	return nil
}

func (x *tx) RearmTimer(k store.ThreadKey) error {
	t, err := x.Thread(k)
	if err != nil {
		return err
	}
	t.TimerAt = t.ExpiresAt
	if t.Owner == "" {
		t.TimerAt = time.Time{}
	}
	return x.writeThread(t, x.shard(k))
}

// Listing cursors are the last thread's key, page NUL PSID, as
// store/bolt's are.
func threadCursor(k store.ThreadKey) string {
	return base64.RawURLEncoding.EncodeToString([]byte(k.Page + "\x00" + k.PSID))
}

func (x *tx) Threads(f store.ThreadFilter) ([]store.Thread, string, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	q := `SELECT record FROM baton_threads WHERE true`
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if f.Page != "" {
		q += ` AND page = ` + arg(f.Page)
	}
	if f.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		switch {
		case err != nil:
			return nil, "", fmt.Errorf("%w: %w", store.ErrInvalidCursor, err)
		case bytes.IndexByte(after, 0) < 0:
			return nil, "", fmt.Errorf("%w: not a thread key", store.ErrInvalidCursor)
		case f.Page != "" && !bytes.HasPrefix(after, []byte(f.Page+"\x00")):
			return nil, "", fmt.Errorf("%w: not from a listing of page %s", store.ErrInvalidCursor, f.Page)
		}
		page, psid, _ := bytes.Cut(after, []byte{0})
		q += ` AND (page, psid) > (` + arg(string(page)) + `, ` + arg(string(psid)) + `)`
	}
	if f.State != "" {
		q += ` AND state = ` + arg(f.State)
	}
	switch f.Owner {
	case "":
	case "idle":
		q += ` AND owner = ''`
	default:
		q += ` AND owner = ` + arg(f.Owner)
	}
	q += ` ORDER BY page, psid LIMIT ` + arg(f.Limit+1)
	out, err := records[store.Thread](x, "threads", q, args...)
	if err != nil || len(out) <= f.Limit {
		return out, "", err
	}
	out = out[:f.Limit]
	return out, threadCursor(out[len(out)-1].ThreadKey), nil
}

func (x *tx) CountThreads() (map[string]int, error) {
	rows, err := x.t.Query(x.ctx, `SELECT state, sum(n) FROM baton_counts GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("postgres: count threads: %w", err)
	}
	out := map[string]int{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: count threads: %w", err)
		}
		out[state] = int(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count threads: %w", err)
	}
	for k, delta := range x.counts { // this transaction's own, not yet written
		out[k.state] += int(delta)
	}
	for state, n := range out {
		if n == 0 {
			delete(out, state)
		}
	}
	return out, nil
}

// flush queues the writes of the counts the transaction moved, once,
// to go with its COMMIT. The rows are locked in key order, the same in
// every transaction: replicas share the counts, and two that locked them
// in a map's order would wait for each other (until PostgreSQL's
// deadlock detection failed one of their group commits).
func (x *tx) flush() {
	for _, k := range slices.SortedFunc(maps.Keys(x.counts), func(a, b countKey) int {
		return cmp.Or(cmp.Compare(a.shard, b.shard), cmp.Compare(a.state, b.state))
	}) {
		if delta := x.counts[k]; delta != 0 {
			x.write("write counts", `INSERT INTO baton_counts (shard, state, n) VALUES ($1, $2, $3)
				ON CONFLICT (shard, state) DO UPDATE SET n = baton_counts.n + EXCLUDED.n`, k.shard, k.state, delta)
		}
	}
	apps := false
	for _, app := range slices.Sorted(maps.Keys(x.pending)) {
		if delta := x.pending[app]; delta != 0 {
			apps = true
			x.write("write counts", `INSERT INTO baton_pending_counts (app, n) VALUES ($1, $2)
				ON CONFLICT (app) DO UPDATE SET n = baton_pending_counts.n + EXCLUDED.n`, app, delta)
		}
	}
	if apps {
		x.write("write counts", `DELETE FROM baton_pending_counts WHERE n <= 0`)
	}
	if x.notify {
		// Delivered at COMMIT, and only if it commits: one a transaction,
		// however many entries it appended.
		x.write("notify", `SELECT pg_notify($1, $2)`, inboundChannel, x.schema)
		x.notify = false
	}
	clear(x.counts)
	clear(x.pending)
}

func (x *tx) AppendHistory(k store.ThreadKey, h store.HistoryEntry) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	x.write("append history", `INSERT INTO baton_history (page, psid, shard, record) VALUES ($1, $2, $3, $4)`,
		k.Page, k.PSID, x.shard(k), raw)
	return nil
}

func (x *tx) History(k store.ThreadKey) ([]store.HistoryEntry, error) {
	return records[store.HistoryEntry](x, "history", `SELECT record FROM baton_history WHERE page = $1 AND psid = $2 ORDER BY id`, k.Page, k.PSID)
}

func (x *tx) PutIntent(i store.Intent) error {
	raw, err := json.Marshal(i)
	if err != nil {
		return err
	}
	x.write("write intent", `INSERT INTO baton_intents (page, psid, shard, record) VALUES ($1, $2, $3, $4)
		ON CONFLICT (page, psid) DO UPDATE SET record = EXCLUDED.record`, i.Page, i.PSID, x.shard(i.ThreadKey), raw)
	return nil
}

func (x *tx) DeleteIntent(k store.ThreadKey) error {
	x.shard(k) // a delete writes the thread's rows too
	x.write("delete intent", `DELETE FROM baton_intents WHERE page = $1 AND psid = $2`, k.Page, k.PSID)
	return nil
}

func (x *tx) Intent(k store.ThreadKey) (store.Intent, error) {
	return record[store.Intent](x, "intent", `SELECT record FROM baton_intents WHERE page = $1 AND psid = $2`, k.Page, k.PSID)
}

func (x *tx) Intents() ([]store.Intent, error) {
	var args []any
	return records[store.Intent](x, "intents", `SELECT record FROM baton_intents WHERE true`+x.onlyOwned(&args)+` ORDER BY page, psid`, args...)
}

func (x *tx) OneTimeToken(token string) (store.OneTimeToken, error) {
	return record[store.OneTimeToken](x, "one-time token", `SELECT record FROM baton_otn WHERE token = $1`, token)
}

func (x *tx) PutOneTimeToken(t store.OneTimeToken) error {
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	k := store.ThreadKey{Page: t.Page, PSID: t.PSID}
	x.write("write one-time token", `INSERT INTO baton_otn (token, page, psid, shard, record) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (token) DO UPDATE SET record = EXCLUDED.record`, t.Token, t.Page, t.PSID, x.shard(k), raw)
	return nil
}

func (x *tx) DueTimers(now time.Time, limit int) ([]store.ThreadKey, error) {
	args := []any{nanos(now), max(limit, 0)}
	rows, err := x.t.Query(x.ctx, `SELECT page, psid FROM baton_threads WHERE timer_at IS NOT NULL AND timer_at <= $1`+
		x.onlyOwned(&args)+` ORDER BY timer_at, page, psid LIMIT $2`, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: due timers: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ThreadKey, error) {
		var k store.ThreadKey
		return k, r.Scan(&k.Page, &k.PSID)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: due timers: %w", err)
	}
	return keys, nil
}

func (x *tx) NextTimer() (time.Time, bool, error) {
	var args []any
	return x.first("next timer", `SELECT timer_at FROM baton_threads WHERE timer_at IS NOT NULL`+x.onlyOwned(&args)+
		` ORDER BY timer_at LIMIT 1`, args...)
}

// first reads the time of the first row of sql, if any.
func (x *tx) first(what, sql string, args ...any) (time.Time, bool, error) {
	var n int64
	err := x.t.QueryRow(x.ctx, sql, args...).Scan(&n)
	switch notFound(err) {
	case nil:
		return time.Unix(0, n).UTC(), true, nil
	case store.ErrNotFound:
		return time.Time{}, false, nil
	}
	return time.Time{}, false, fmt.Errorf("postgres: %s: %w", what, err)
}
