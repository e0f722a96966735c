package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/groupcommit"
)

// ErrHeld is returned by Open when another process holds the file.
var ErrHeld = errors.New("held by another Baton process")

// CorruptError is a data file bbolt cannot read: damaged, truncated, or
// not a Baton store at all. It says what to do.
type CorruptError struct {
	Path  string
	Cause string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("data file %s is damaged or not a Baton store (%s): restore it from a backup (baton backup -o FILE makes one), or move it away to start with an empty store", e.Path, e.Cause)
}

// Open opens or creates the file at path. A file another process holds
// fails at once with ErrHeld (after LockTimeout when that is set); a file
// bbolt cannot read fails with a *CorruptError, never a panic.
func Open(path string, opt Options) (*DB, error) {
	// bbolt waits for ever on a zero timeout; the smallest one tries the
	// lock once.
	timeout := max(opt.LockTimeout, time.Nanosecond)
	db, err := openFile(path, timeout)
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open %s: %w: stop it, or give this one another data file", path, ErrHeld)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, &CorruptError{Path: path, Cause: err.Error()}
	case errors.As(err, new(*FormatError)):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	d := &DB{db: db, path: path}
	d.gc = groupcommit.New(d.commitGroup, opt.CommitWait)
	return d, nil
}

// openFile opens the file and creates the buckets, turning bbolt's
// panics on a damaged file into a *CorruptError.
func openFile(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			db, err = nil, &CorruptError{Path: path, Cause: fmt.Sprint(r)}
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		indexed := tx.Bucket(bLanes) != nil
		for _, b := range allBucket {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := checkFormat(tx, path); err != nil {
			return err
		}
		if !indexed { // a new file, or one from before the lane indexes
			return buildLaneIndexes(tx)
		}
		return nil
	})
	var fe *FormatError
	if errors.As(err, &fe) {
		db.Close()
		return nil, err
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("create buckets in %s: %w", path, err)
	}
	return db, nil
}

// Format is the layout of the data file this binary writes. A binary
// refuses a file of a later format rather than write into indexes it does
// not know (an older Baton would leave the lane index of a newer one
// stale, and deliveries would wait unseen); a file of an earlier one is
// brought up to date on open. Raise it with each change of layout, with the
// migration from the one before.
const Format = 1

var formatKey = []byte("format")

// FormatError is a data file written by a later Baton than this one.
type FormatError struct {
	Path         string
	Found, Known uint64
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("data file %s has data format %d, written by a later Baton; this binary knows format %d at most: run the later binary, or restore the backup taken before the upgrade (baton backup -o FILE)", e.Path, e.Found, e.Known)
}

// checkFormat refuses a file of a later format and stamps an unstamped
// one (new, or from before the stamp: format 1's layout, the lane indexes
// built below) with this binary's.
func checkFormat(tx *bolt.Tx, path string) error {
	meta := tx.Bucket(bMeta)
	if v := meta.Get(formatKey); len(v) == 8 {
		if f := binary.BigEndian.Uint64(v); f > Format {
			return &FormatError{Path: path, Found: f, Known: Format}
		}
	}
	return meta.Put(formatKey, u64(Format))
}

// guard runs fn, turning a panic of bbolt on a damaged page (or a fault
// reading the mapped file) into a *CorruptError, so that a damaged file
// is an error for the one transaction, never a crash of the process.
func (d *DB) guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &CorruptError{Path: d.path, Cause: fmt.Sprint(r)}
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return fn()
}

var _ store.Store = (*DB)(nil)
