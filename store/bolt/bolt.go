// Package bolt implements store.Store on a bbolt file: the only package
// that imports bbolt. Writes from concurrent callers are grouped into one
// transaction and one fsync (see commit.go).
package bolt

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/groupcommit"
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

var errStop = errors.New("stop")
