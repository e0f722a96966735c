package bolt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
	"go.etcd.io/bbolt"
)

// mustFill writes n threads into a new file and returns its bytes.
func mustFill(t *testing.T, path string, n int) []byte {
	t.Helper()
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := db.Update(context.Background(), func(tx store.Tx) error {
			return tx.PutThread(store.Thread{ThreadKey: store.ThreadKey{Page: "1", PSID: fmt.Sprint(i)}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A damaged data file is a clear error that names the file and what to
// do, never a panic.
func TestOpenDamagedFile(t *testing.T) {
	dir := t.TempDir()
	good := mustFill(t, filepath.Join(dir, "good.db"), 500)
	for name, body := range map[string][]byte{
		"truncated":   good[:len(good)/2],
		"not bbolt":   []byte("this is not a database, it is a text file that someone put here"),
		"zeroed meta": append(make([]byte, 8192), good[8192:]...),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(path, body, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, bolt.Options{})
			if err == nil {
				// Opened: reading it must fail cleanly, not panic.
				err = db.View(func(tx store.ReadTx) error { _, _, err := tx.Threads(store.ThreadFilter{Limit: 1000}); return err })
				db.Close()
			}
			var ce *bolt.CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "restore it from a backup") {
				t.Fatalf("err %v", err)
			}
		})
	}
}

// A file another process (here: another handle) holds fails at once and
// says so.
func TestOpenHeldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baton.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	_, err = bolt.Open(path, bolt.Options{})
	if !errors.Is(err, bolt.ErrHeld) || !strings.Contains(err.Error(), "held by another Baton process") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v to say so", d)
	}
}

// Backup writes a consistent copy that opens as a store with the same
// records.
func TestBackupRestores(t *testing.T) {
	dir := t.TempDir()
	mustFill(t, filepath.Join(dir, "src.db"), 0)
	db, err := bolt.Open(filepath.Join(dir, "src.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 50 {
		_ = db.Update(context.Background(), func(tx store.Tx) error {
			return tx.PutThread(store.Thread{ThreadKey: store.ThreadKey{Page: "1", PSID: fmt.Sprint(i)}})
		})
	}
	f, err := os.Create(filepath.Join(dir, "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Backup(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cp, err := bolt.Open(filepath.Join(dir, "copy.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var n int
	_ = cp.View(func(tx store.ReadTx) error {
		th, _, err := tx.Threads(store.ThreadFilter{Limit: 1000})
		n = len(th)
		return err
	})
	if n != 50 {
		t.Fatalf("copy has %d threads", n)
	}
}

// An expiry past what nanoseconds hold (year 2262) keeps its timer in the
// future instead of wrapping to the past and being due for ever.
func TestTimerBeyond2262(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	far := time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)
	th := store.Thread{ThreadKey: store.ThreadKey{Page: "1", PSID: "2"}}
	th.Owner, th.ExpiresAt = "3", far
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutThread(th) }); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	_ = db.View(func(tx store.ReadTx) error {
		due, err := tx.DueTimers(now, 10)
		if err != nil || len(due) != 0 {
			t.Fatalf("due now: %v %v", due, err)
		}
		next, ok, err := tx.NextTimer()
		if err != nil || !ok || !next.After(now) {
			t.Fatalf("next timer %v %v %v", next, ok, err)
		}
		return nil
	})
}

// A file of a later data format is refused, naming what to do, and left
// as it was; an unstamped file (from before the stamp) opens and is
// stamped with this binary's format.
func TestOpenChecksFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baton.db")
	mustFill(t, path, 3)
	setFormat := func(v []byte) {
		t.Helper()
		raw, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if err := raw.Update(func(tx *bbolt.Tx) error {
			if v == nil {
				return tx.Bucket([]byte("meta")).Delete([]byte("format"))
			}
			return tx.Bucket([]byte("meta")).Put([]byte("format"), v)
		}); err != nil {
			t.Fatal(err)
		}
	}
	format := func() uint64 {
		t.Helper()
		raw, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		var f uint64
		_ = raw.View(func(tx *bbolt.Tx) error {
			if v := tx.Bucket([]byte("meta")).Get([]byte("format")); len(v) == 8 {
				f = binary.BigEndian.Uint64(v)
			}
			return nil
		})
		return f
	}
	if f := format(); f != bolt.Format {
		t.Fatalf("a new file has format %d, want %d", f, bolt.Format)
	}

	later := binary.BigEndian.AppendUint64(nil, bolt.Format+1)
	setFormat(later)
	_, err := bolt.Open(path, bolt.Options{})
	var fe *bolt.FormatError
	if !errors.As(err, &fe) || fe.Found != bolt.Format+1 || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "restore the backup") {
		t.Fatalf("later format: err %v", err)
	}
	if f := format(); f != bolt.Format+1 {
		t.Fatalf("the refused file's format became %d", f)
	}

	setFormat(nil)
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("unstamped file: %v", err)
	}
	n := 0
	if err := db.View(func(tx store.ReadTx) error {
		ths, _, err := tx.Threads(store.ThreadFilter{Limit: 10})
		n = len(ths)
		return err
	}); err != nil || n != 3 {
		t.Fatalf("unstamped file read %d threads, err %v", n, err)
	}
	db.Close()
	if f := format(); f != bolt.Format {
		t.Fatalf("unstamped file stamped %d, want %d", f, bolt.Format)
	}
}
