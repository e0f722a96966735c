package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
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
	if _, err := db.Backup(f); err != nil {
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
