// Package bolt implements store.Store on a bbolt file: the only package
// that imports bbolt. Writes from concurrent callers are grouped into one
// transaction and one fsync (see commit.go).
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/groupcommit"
)

var (
	bThreads   = []byte("threads")   // page \0 psid -> Thread
	bHistory   = []byte("history")   // page \0 psid \0 seq -> HistoryEntry
	bTimers    = []byte("timers")    // expires(ns) page \0 psid -> nil
	bSeen      = []byte("seen")      // "t:"+day -> (event time + key -> empty); see MarkSeen
	bJournal   = []byte("journal")   // seq -> JournalEntry
	bOutbox    = []byte("outbox")    // id -> Delivery
	bDead      = []byte("dead")      // id -> Delivery
	bIntents   = []byte("intents")   // page \0 psid -> Intent
	bOTN       = []byte("otn")       // token -> OneTimeToken
	bJobs      = []byte("jobs")      // rule \0 page \0 psid -> Job
	bJobTimes  = []byte("jobtimes")  // at(ns) rule \0 page \0 psid -> nil
	bLanes     = []byte("lanes")     // app \0 page \0 psid \0 id -> schedule; see lanes.go
	bDeadLanes = []byte("deadlanes") // app \0 page \0 psid \0 id -> nil
	bDeletions = []byte("deletions") // code -> Deletion (Meta's data deletion requests)
	bMeta      = []byte("meta")
	// The transcript, its index in the order entries were recorded (for
	// retention and search), and what Baton learnt of people; see
	// transcript.go.
	bTranscript    = []byte("transcript")    // page \0 psid \0 at(ns) seq -> TranscriptEntry
	bTranscriptAge = []byte("transcriptage") // seq -> recorded(ns) + transcript key
	bPeople        = []byte("people")        // page \0 psid -> Person
	allBucket      = [][]byte{bThreads, bHistory, bTimers, bSeen, bJournal, bOutbox, bDead, bIntents, bOTN, bJobs, bJobTimes, bLanes, bDeadLanes, bDeletions, bMeta,
		bTranscript, bTranscriptAge, bPeople}
)

// DB is a store.Store on one bbolt file.
type DB struct {
	db   *bolt.DB
	gc   *groupcommit.Group[*tx]
	path string
}

// Options tune a DB; the zero value is the default.
type Options struct {
	// LockTimeout: one process owns a file; a second Open fails with
	// ErrHeld after this long (default: at once).
	LockTimeout time.Duration
	// CommitWait lets a small write group wait up to this long for more
	// writes to share its fsync (default 0: never wait).
	CommitWait time.Duration
}

// Close waits for queued writes and closes the file.
func (d *DB) Close() error {
	d.gc.Close()
	return d.db.Close()
}

// Update runs fn in a write transaction shared with concurrent callers; it
// returns once the transaction is durable (or failed).
func (d *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	return d.gc.Do(ctx, func(w *tx) error { return fn(w) })
}

// View runs fn in a read transaction.
func (d *DB) View(fn func(store.ReadTx) error) error {
	return d.guard(func() error {
		return d.db.View(func(btx *bolt.Tx) error { return fn(newTx(btx)) })
	})
}

// Stats returns the group commit's live counters. CommitStats gives a
// snapshot without exposing this package's types.
func (d *DB) Stats() *CommitStats { return d.gc.Stats() }

// CommitStats count the group commit's work since Open.
type CommitStats = groupcommit.Stats

// commitGroup runs one group commit's transaction. One wrapper serves
// the whole group: its caches live exactly as long as the transaction and
// are dropped with a rollback.
func (d *DB) commitGroup(fn func(*tx) error) error {
	return d.guard(func() error {
		return d.db.Update(func(btx *bolt.Tx) error {
			w := newTx(btx)
			if err := fn(w); err != nil {
				return err
			}
			return w.flush()
		})
	})
}

// CommitStats returns a snapshot of the group commit's counters. Each is
// read on its own, so under load they may be a commit apart.
func (d *DB) CommitStats() store.CommitStats {
	st := d.gc.Stats()
	return store.CommitStats{
		Commits: uint64(st.Commits.Load()),
		Calls:   uint64(st.Calls.Load()),
		Commit:  time.Duration(st.Nanos.Load()),
		Apply:   time.Duration(st.FnNanos.Load()),
	}
}

// Backup writes a consistent copy of the database to w while it serves:
// one read transaction, so writers go on meanwhile.
func (d *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := d.db.View(func(btx *bolt.Tx) error {
		var err error
		n, err = btx.WriteTo(w)
		return err
	})
	return n, err
}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func threadKey(k store.ThreadKey) []byte {
	b := make([]byte, 0, len(k.Page)+len(k.PSID)+1)
	b = append(b, k.Page...)
	b = append(b, 0)
	return append(b, k.PSID...)
}

func splitThreadKey(b []byte) store.ThreadKey {
	for i, c := range b {
		if c == 0 {
			return store.ThreadKey{Page: string(b[:i]), PSID: string(b[i+1:])}
		}
	}
	return store.ThreadKey{Page: string(b)}
}

// timeKey encodes t so that byte order is time order for the timer and
// job indexes. Times outside what nanoseconds since 1970 hold in an int64
// (before 1970, after 2262) are clamped: an expiry in year 2262 would
// otherwise wrap to the past and be due for ever.
func timeKey(t time.Time) []byte {
	switch {
	case t.Before(time.Unix(0, 0)):
		return u64(0)
	case t.After(time.Unix(0, math.MaxInt64)):
		return u64(math.MaxInt64)
	}
	return u64(uint64(t.UnixNano()))
}

var errStop = errors.New("stop")
