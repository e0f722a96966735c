package postgres

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/batonhq/baton/store"
)

// An erase (store.Tx.ErasePerson) goes through erasePhases, a bounded
// step per transaction, as store/bolt's does. Every table of one person's
// records has an index on (page, psid), the journal included (its psid
// column), so a step is a bounded DELETE, never a scan; only dedup marks,
// keyed by what Meta sent, are found by their key's text.

// erasePhases is the one list of what is kept per person, in the order an
// erase removes it: first what acts on the person (timers, intents, rule
// jobs, pending deliveries), the journal after the deliveries that read
// their event from it. A new per-person table adds its phase here and its
// count to store.Erased. Each run removes at most budget records and
// reports how many it removed.
var erasePhases = []struct {
	name string
	run  func(x *tx, e *eraseRun, budget int) (int, error)
}{
	// Webhook events accepted and not yet routed (a cluster's queue,
	// usually milliseconds deep): routed after the erase, one would bring
	// the person back. Counted with the journal, what they become.
	{"inbound", eraseTable("inbound queue", `DELETE FROM baton_inbound WHERE seq IN (
		SELECT seq FROM baton_inbound WHERE page = $1 AND psid = $2 ORDER BY seq LIMIT $3)`, func(n *store.Erased) *int { return &n.Journal })},
	{"thread", (*tx).eraseThread},
	{"pending", (*tx).erasePending},
	{"history", eraseTable("history", `DELETE FROM baton_history WHERE (page, psid, id) IN (
		SELECT page, psid, id FROM baton_history WHERE page = $1 AND psid = $2 ORDER BY id LIMIT $3)`, func(n *store.Erased) *int { return &n.History })},
	{"dead", eraseTable("dead letters", `DELETE FROM baton_dead WHERE id IN (
		SELECT id FROM baton_dead WHERE page = $1 AND psid = $2 ORDER BY id LIMIT $3)`, func(n *store.Erased) *int { return &n.Dead })},
	{"otn", eraseTable("one-time tokens", `DELETE FROM baton_otn WHERE token IN (
		SELECT token FROM baton_otn WHERE page = $1 AND psid = $2 LIMIT $3)`, func(n *store.Erased) *int { return &n.OneTimeTokens })},
	{"journal", (*tx).eraseJournal},
	{"seen", (*tx).eraseSeen},
	{"transcript", (*tx).eraseTranscript},
}

// eraseCursor is where an erase resumes, opaque to callers.
type eraseCursor struct {
	Phase int `json:"p"`
	// Bound is the journal's last seq when the erase began: later entries
	// are new activity, and their deliveries may still read them.
	Bound int64 `json:"b"`
}

type eraseRun struct {
	k   store.ThreadKey
	cur eraseCursor
	out store.Erased
}

func (x *tx) ErasePerson(k store.ThreadKey, from string, limit int) (store.Erased, string, error) {
	// Ids are digits before any is part of a query or a pattern.
	if !k.Valid() {
		return store.Erased{}, "", fmt.Errorf("erase %s: page and PSID must be Meta ids (1 to 20 digits)", k)
	}
	x.shard(k) // every step writes the thread's rows, whatever it finds
	e := &eraseRun{k: k}
	if from == "" {
		if err := x.t.QueryRow(x.ctx, `SELECT coalesce(max(seq), 0) FROM baton_journal`).Scan(&e.cur.Bound); err != nil {
			return e.out, "", fmt.Errorf("erase %s: postgres: %w", k, err)
		}
	} else {
		raw, err := base64.RawURLEncoding.DecodeString(from)
		if err == nil {
			err = json.Unmarshal(raw, &e.cur)
		}
		if err != nil || e.cur.Phase < 0 || e.cur.Phase >= len(erasePhases) {
			return e.out, "", fmt.Errorf("erase %s: %q is not a cursor an erase step handed out", k, from)
		}
	}
	left := max(limit, 1)
	for e.cur.Phase < len(erasePhases) {
		if left <= 0 {
			break
		}
		p := erasePhases[e.cur.Phase]
		n, err := p.run(x, e, left)
		if err != nil {
			return e.out, "", fmt.Errorf("erase %s (%s): %w", k, p.name, err)
		}
		if n >= left && p.name != "thread" {
			left = 0 // the budget is spent: there may be more of this phase
			break
		}
		left -= n
		e.cur.Phase++
	}
	if e.cur.Phase == len(erasePhases) {
		return e.out, "", nil
	}
	raw, err := json.Marshal(e.cur)
	return e.out, base64.RawURLEncoding.EncodeToString(raw), err
}

// eraseThread removes the record and what hangs on its key (the timer is
// a column of it), the state count, the intent and the rule jobs: a few
// rows, in one step whatever the budget.
func (x *tx) eraseThread(e *eraseRun, _ int) (int, error) {
	var state string
	err := x.t.QueryRow(x.ctx, `DELETE FROM baton_threads WHERE page = $1 AND psid = $2 RETURNING state`, e.k.Page, e.k.PSID).Scan(&state)
	switch notFound(err) {
	case nil:
		x.count(x.shard(e.k), state, -1)
		delete(x.threads, e.k)
		e.out.Threads++
	case store.ErrNotFound:
	default:
		return 0, err
	}
	n, err := x.exec("erase intent", `DELETE FROM baton_intents WHERE page = $1 AND psid = $2`, e.k.Page, e.k.PSID)
	if err != nil {
		return 0, err
	}
	e.out.Intents += int(n)
	j, err := x.exec("erase jobs", `DELETE FROM baton_jobs WHERE page = $1 AND psid = $2`, e.k.Page, e.k.PSID)
	if err != nil {
		return 0, err
	}
	e.out.Jobs += int(j)
	return e.out.Threads + int(n+j), nil
}

// erasePending removes pending deliveries. A dispatcher holding one of
// the lanes finds it empty on its next read; an attempt in flight ends in
// a done mark or a retry for a delivery that is gone, which the store
// ignores or refuses (ErrNotFound), never a delivery again.
func (x *tx) erasePending(e *eraseRun, budget int) (int, error) {
	rows, err := x.t.Query(x.ctx, `WITH gone AS (DELETE FROM baton_outbox WHERE id IN (
		SELECT id FROM baton_outbox WHERE page = $1 AND psid = $2 ORDER BY id LIMIT $3) RETURNING app)
		SELECT app, count(*) FROM gone GROUP BY app`, e.k.Page, e.k.PSID, budget)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	total := 0
	for rows.Next() {
		var app string
		var n int
		if err := rows.Scan(&app, &n); err != nil {
			return 0, err
		}
		x.countPending(app, -int64(n))
		total += n
	}
	e.out.Pending += total
	return total, rows.Err()
}

// eraseTable is a phase that deletes up to budget rows of the person with
// sql ($1 page, $2 psid, $3 budget) and counts them in field.
func eraseTable(what, sql string, field func(*store.Erased) *int) func(*tx, *eraseRun, int) (int, error) {
	return func(x *tx, e *eraseRun, budget int) (int, error) {
		n, err := x.exec("erase "+what, sql, e.k.Page, e.k.PSID, budget)
		*field(&e.out) += int(n)
		return int(n), err
	}
}

// eraseJournal removes the journal entries of the person's events (their
// sender, or an echo's recipient: the psid column), up to the entry last
// written when the erase began, and never one a pending delivery still
// reads its event from.
func (x *tx) eraseJournal(e *eraseRun, budget int) (int, error) {
	n, err := x.exec("erase journal", `DELETE FROM baton_journal WHERE seq IN (
		SELECT j.seq FROM baton_journal j WHERE j.page = $1 AND j.psid = $2 AND j.seq <= $4
		  AND NOT EXISTS (SELECT 1 FROM baton_outbox o WHERE o.journal_seq = j.seq)
		ORDER BY j.seq LIMIT $3)`, e.k.Page, e.k.PSID, budget, e.cur.Bound)
	e.out.Journal += int(n)
	return int(n), err
}

// eraseSeen removes the dedup marks whose key names the page and the PSID
// as adjacent ':'-separated fields (ingress's marks of read and delivery
// receipts: "rd:page:psid:watermark"). The other marks hold a hash or
// Meta's message id, which say nothing of the person once the journal
// entry is gone, and are forgotten with their day within the window.
// Page and PSID are digits (checked), so the patterns hold no wildcard.
func (x *tx) eraseSeen(e *eraseRun, budget int) (int, error) {
	field := "%:" + e.k.Page + ":" + e.k.PSID
	n, err := x.exec("erase dedup marks", `DELETE FROM baton_seen WHERE (key, at) IN (
		SELECT key, at FROM baton_seen WHERE key LIKE $1 OR key LIKE $2 LIMIT $3)`, field+":%", field, budget)
	e.out.DedupMarks += int(n)
	return int(n), err
}

// eraseTranscript removes what Baton learnt of the person and their
// transcript.
func (x *tx) eraseTranscript(e *eraseRun, budget int) (int, error) {
	p, err := x.exec("erase person", `DELETE FROM baton_people WHERE page = $1 AND psid = $2`, e.k.Page, e.k.PSID)
	if err != nil {
		return 0, err
	}
	e.out.People += int(p)
	if budget -= int(p); budget <= 0 {
		return int(p), nil
	}
	n, err := x.exec("erase transcript", `DELETE FROM baton_transcript WHERE seq IN (
		SELECT seq FROM baton_transcript WHERE page = $1 AND psid = $2 ORDER BY seq LIMIT $3)`, e.k.Page, e.k.PSID, budget)
	e.out.Transcript += int(n)
	return int(p + n), err
}
