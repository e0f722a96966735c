package bolt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt/layout"
)

// An erase (store.Tx.ErasePerson) goes through erasePhases, one bucket
// group each, a bounded step per transaction. The buckets keyed by
// thread are a seek; the others (journal, dead letters, one-time tokens,
// dedup marks) are not keyed by person and are scanned, a budget of
// records per step, with a byte search for the PSID before anything is
// decoded. An index by person would spare the scans but cost every
// webhook one more write in a far part of the B+tree inside the group
// commit; an erase is rare, so it pays instead.

// erasePhases is the one list of what is kept per person, in the order an
// erase removes it: first what acts on the person (timers, thread-control
// intents, rule jobs, pending deliveries), so nothing does while the rest
// goes; the journal after the deliveries that read their event from it.
// A new per-person bucket adds its phase here and its count to
// store.Erased; storetest's erase case then needs one record of it.
var erasePhases = []struct {
	name string
	run  func(x *tx, e *eraseRun) (done bool, err error)
}{
	{"thread", (*tx).eraseThread},   // threads, timers, intents, jobs, jobtimes, meta counts
	{"pending", (*tx).erasePending}, // outbox, lanes, meta pending counts
	{"history", (*tx).eraseHistory}, // history
	{"dead", (*tx).eraseDead},       // dead, deadlanes
	{"otn", (*tx).eraseOTN},         // otn
	{"journal", (*tx).eraseJournal}, // journal
	{"seen", (*tx).eraseSeen},       // seen (marks whose key names the PSID)
	// Last, so that a cursor handed out before it joined still names
	// the phase it was in.
	{"transcript", (*tx).eraseTranscript}, // transcript, transcriptage, people
}

// scanFactor is how many more records a step may examine than remove: a
// byte search costs far less than a delete.
const scanFactor = 16

// eraseCursor is where an erase resumes, opaque to callers.
type eraseCursor struct {
	Phase int    `json:"p"`
	Pos   []byte `json:"k,omitempty"` // the last key the phase examined
	// Bound is the journal's last seq when the erase began: later entries
	// are new activity, and their deliveries may still read them.
	Bound uint64 `json:"b"`
}

// eraseRun is one step of an erase.
type eraseRun struct {
	k        store.ThreadKey
	key      []byte // layout.ThreadKey(k)
	cur      *eraseCursor
	out      *store.Erased
	limit    int // removals a step may make
	removed  int // by the phases before this one, in this step
	examined int // records examined in this step
}

// full reports whether the step's budget is spent, with pending more
// removals of the current phase.
func (e *eraseRun) full(pending int) bool {
	return e.removed+pending >= e.limit || e.examined >= e.limit*scanFactor
}

func (x *tx) ErasePerson(k store.ThreadKey, from string, limit int) (store.Erased, string, error) {
	var out store.Erased
	// Ids are digits before any is part of a key or a byte search: a NUL
	// or a short string could otherwise reach another person's records.
	if !k.Valid() {
		return out, "", fmt.Errorf("erase %s: page and PSID must be Meta ids (1 to 20 digits)", k)
	}
	cur := eraseCursor{}
	if from == "" {
		cur.Bound = x.b(layout.Journal).Sequence()
	} else {
		raw, err := base64.RawURLEncoding.DecodeString(from)
		if err == nil {
			err = json.Unmarshal(raw, &cur)
		}
		if err != nil || cur.Phase < 0 || cur.Phase >= len(erasePhases) {
			return out, "", fmt.Errorf("erase %s: %q is not a cursor an erase step handed out", k, from)
		}
	}
	e := &eraseRun{k: k, key: layout.ThreadKey(k), cur: &cur, out: &out, limit: max(limit, 1)}
	for cur.Phase < len(erasePhases) {
		before := e.out.Total()
		done, err := erasePhases[cur.Phase].run(x, e)
		e.removed += e.out.Total() - before
		if err != nil {
			return out, "", fmt.Errorf("erase %s (%s): %w", k, erasePhases[cur.Phase].name, err)
		}
		if !done {
			raw, err := json.Marshal(cur)
			return out, base64.RawURLEncoding.EncodeToString(raw), err
		}
		cur.Phase, cur.Pos = cur.Phase+1, nil
	}
	return out, "", nil
}

// eraseThread removes the record and what hangs on its key: the expiry
// timer, the state count, a thread-control intent, the rule jobs.
func (x *tx) eraseThread(e *eraseRun) (bool, error) {
	t, err := x.Thread(e.k)
	switch {
	case err == nil:
		if !t.TimerAt.IsZero() {
			if err := x.b(layout.Timers).Delete(append(layout.TimeKey(t.TimerAt), e.key...)); err != nil {
				return false, err
			}
		}
		if err := x.count(string(t.State), -1); err != nil {
			return false, err
		}
		if err := x.b(layout.Threads).Delete(e.key); err != nil {
			return false, err
		}
		delete(x.threads, string(e.key))
		e.out.Threads++
	case !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	if x.b(layout.Intents).Get(e.key) != nil {
		if err := x.b(layout.Intents).Delete(e.key); err != nil {
			return false, err
		}
		e.out.Intents++
	}
	// Jobs are keyed rule \0 page \0 psid: one seek per rule, and the
	// rules are few.
	var rules []string
	c := x.b(layout.Jobs).Cursor()
	for k, _ := c.First(); k != nil; {
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			k, _ = c.Next()
			continue
		}
		rule := string(k[:i])
		want := layout.JobKey(e.k, rule)
		if got, _ := c.Seek(want); bytes.Equal(got, want) {
			rules = append(rules, rule)
		}
		k, _ = c.Seek(append([]byte(rule), 1)) // past every key of the rule
	}
	for _, rule := range rules {
		if err := x.DeleteJob(e.k, rule); err != nil {
			return false, err
		}
		e.out.Jobs++
	}
	return true, nil
}

// erasePending removes the person's pending deliveries, bot by bot: the
// lane index is keyed app \0 page \0 psid \0 id, one seek per bot. A
// dispatcher holding one of the lanes finds it empty on its next read; an
// attempt in flight ends in a done mark or a retry for a delivery that is
// gone, which the store ignores or refuses (ErrNotFound), never a
// delivery again.
func (x *tx) erasePending(e *eraseRun) (bool, error) {
	var gone []store.Delivery
	full := false
	c := x.b(layout.Lanes).Cursor()
	k, _ := c.First()
	if e.cur.Pos != nil {
		k, _ = c.Seek(e.cur.Pos)
	}
	for k != nil && !full {
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			return false, fmt.Errorf("lane index key %q is damaged", k)
		}
		app := string(k[:i])
		prefix := layout.LaneKey(app, e.k)
		for lk, _ := c.Seek(prefix); lk != nil && bytes.HasPrefix(lk, prefix); lk, _ = c.Next() {
			if full = e.full(len(gone)); full {
				e.cur.Pos = []byte(app) // this bot's lane again, what is left of it
				break
			}
			gone = append(gone, store.Delivery{ID: binary.BigEndian.Uint64(lk[len(prefix):]), App: app, Page: e.k.Page, PSID: e.k.PSID})
		}
		e.examined++
		k, _ = c.Seek(append([]byte(app), 1))
	}
	for i := range gone {
		if err := x.unqueue(&gone[i], layout.LaneIDKey(&gone[i])); err != nil {
			return false, err
		}
	}
	e.out.Pending += len(gone)
	return !full, nil
}

func (x *tx) eraseHistory(e *eraseRun) (bool, error) {
	prefix := layout.HistoryPrefix(e.k)
	var gone [][]byte
	c := x.b(layout.History).Cursor()
	full := false
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if full = e.full(len(gone)); full {
			break
		}
		gone = append(gone, append([]byte(nil), k...))
	}
	for _, k := range gone { // after the walk, as scan does
		if err := x.b(layout.History).Delete(k); err != nil {
			return false, err
		}
	}
	e.out.History += len(gone)
	return !full, nil
}

func (x *tx) eraseDead(e *eraseRun) (bool, error) {
	field := layout.PSIDField(e.k.PSID)
	var lanes [][]byte
	done, err := x.scan(layout.Dead, e, &e.out.Dead, func(k, v []byte) (bool, error) {
		var d store.Delivery
		if !bytes.Contains(v, field) {
			return false, nil
		} else if err := unmarshal(v, &d); err != nil {
			return false, fmt.Errorf("dead delivery %d: %w", binary.BigEndian.Uint64(k), err)
		}
		d.ID = binary.BigEndian.Uint64(k)
		ours := d.Page == e.k.Page && d.PSID == e.k.PSID
		if ours {
			lanes = append(lanes, layout.LaneIDKey(&d))
		}
		return ours, nil
	})
	for _, k := range lanes {
		if err == nil {
			err = x.b(layout.DeadLanes).Delete(k) // a key not there is nothing
		}
	}
	return done, err
}

func (x *tx) eraseOTN(e *eraseRun) (bool, error) {
	field := layout.PSIDField(e.k.PSID)
	return x.scan(layout.OTN, e, &e.out.OneTimeTokens, func(_, v []byte) (bool, error) {
		var t store.OneTimeToken
		if !bytes.Contains(v, field) {
			return false, nil
		} else if err := unmarshal(v, &t); err != nil {
			return false, fmt.Errorf("one-time token: %w", err)
		}
		return t.Page == e.k.Page && t.PSID == e.k.PSID, nil
	})
}

// eraseJournal removes the journal entries of the person's events, up to
// the entry last written when the erase began. Each entry holds one event
// (ingress journals every event of a batched webhook on its own), so an
// entry is the person's or not: its page and the event's sender or
// recipient (an echo's recipient is the person) say which.
func (x *tx) eraseJournal(e *eraseRun) (bool, error) {
	return x.scan(layout.Journal, e, &e.out.Journal, func(k, v []byte) (bool, error) {
		seq := binary.BigEndian.Uint64(k)
		if seq > e.cur.Bound {
			return false, errStop
		}
		return layout.JournalOf(seq, v, e.k)
	})
}

// eraseSeen removes the dedup marks whose key names the page and the PSID
// as adjacent ':'-separated fields (ingress's marks of read and delivery
// receipts: "rd:page:psid:watermark"). The other marks hold a hash or
// Meta's message id, which say nothing of the person once the journal
// entry is gone, and are forgotten with their day within the window.
func (x *tx) eraseSeen(e *eraseRun) (bool, error) {
	field := []byte(":" + e.k.Page + ":" + e.k.PSID + ":")
	last := field[:len(field)-1]
	names := func(key []byte) bool { return bytes.Contains(key, field) || bytes.HasSuffix(key, last) }
	seen := x.b(layout.Seen)
	type mark struct{ day, key []byte }
	var gone []mark
	var day, after []byte
	if e.cur.Pos != nil {
		day, after, _ = bytes.Cut(bytes.Clone(e.cur.Pos), []byte{0})
	}
	full := false
	dc := seen.Cursor()
	d, v := dc.First()
	if day != nil {
		d, v = dc.Seek(day)
	}
	for ; d != nil && !full; d, v = dc.Next() {
		if v != nil {
			continue // not a day's bucket
		}
		c := seen.Bucket(d).Cursor()
		k, _ := c.First()
		if bytes.Equal(d, day) && len(after) > 0 {
			if k, _ = c.Seek(after); bytes.Equal(k, after) {
				k, _ = c.Next()
			}
		}
		for ; k != nil; k, _ = c.Next() {
			if full = e.full(len(gone)); full {
				break
			}
			e.examined++
			// The last key examined: the next step resumes after it.
			e.cur.Pos = append(append(append(e.cur.Pos[:0], d...), 0), k...)
			if names(k) {
				gone = append(gone, mark{append([]byte(nil), d...), append([]byte(nil), k...)})
			}
		}
	}
	for _, m := range gone {
		if err := seen.Bucket(m.day).Delete(m.key); err != nil {
			return false, err
		}
	}
	e.out.DedupMarks += len(gone)
	return !full, nil
}

// scan walks bucket from after the cursor's position until the step's
// budget is spent, and removes the records match says are the person's,
// counting them in n. match may end the walk with errStop.
func (x *tx) scan(bucket []byte, e *eraseRun, n *int, match func(k, v []byte) (bool, error)) (done bool, err error) {
	b := x.b(bucket)
	c := b.Cursor()
	k, v := c.First()
	if e.cur.Pos != nil {
		if k, v = c.Seek(e.cur.Pos); bytes.Equal(k, e.cur.Pos) {
			k, v = c.Next()
		}
	}
	var gone [][]byte
	for done = true; k != nil; k, v = c.Next() {
		if e.full(len(gone)) {
			done = false // e.cur.Pos is the last key examined
			break
		}
		ok, err := match(k, v)
		if err == errStop {
			break
		} else if err != nil {
			return false, err
		}
		e.examined++
		e.cur.Pos = append(e.cur.Pos[:0], k...)
		if ok {
			gone = append(gone, append([]byte(nil), k...))
		}
	}
	// Keys go after the walk: a bbolt cursor may skip a key when the one
	// under it is deleted.
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return false, err
		}
	}
	*n += len(gone)
	return done, nil
}

func (x *tx) PutDeletion(d store.Deletion) error {
	if d.Code == "" {
		return errors.New("a deletion request needs a code")
	}
	return put(x.b(layout.Deletions), []byte(d.Code), d)
}

func (x *tx) Deletion(code string) (store.Deletion, error) {
	return get[store.Deletion](x.b(layout.Deletions), []byte(code))
}

func (x *tx) Deletions(status string, limit int) ([]store.Deletion, error) {
	var out []store.Deletion
	err := x.b(layout.Deletions).ForEach(func(_, v []byte) error {
		if limit > 0 && len(out) >= limit {
			return errStop
		}
		var d store.Deletion
		if err := unmarshal(v, &d); err != nil {
			return fmt.Errorf("deletion request: %w", err)
		}
		if status == "" || d.Status == status {
			out = append(out, d)
		}
		return nil
	})
	if err == errStop {
		err = nil
	}
	return out, err
}
