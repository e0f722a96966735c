package bolt

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/storetest"
)

// MustOpen opens a store in dir, closed when the test ends.
func MustOpen(tb testing.TB, dir string) store.Store {
	tb.Helper()
	db, err := Open(filepath.Join(dir, "baton.db"), Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func TestSuite(t *testing.T) { storetest.Run(t, MustOpen) }

func TestSecondOpenFailsInsteadOfWaiting(t *testing.T) {
	dir := t.TempDir()
	MustOpen(t, dir)
	if _, err := Open(filepath.Join(dir, "baton.db"), Options{LockTimeout: 50 * time.Millisecond}); err == nil {
		t.Fatal("a second process could open the same file")
	}
}

func putThread(db *DB, i int) error {
	return db.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutThread(store.Thread{ThreadKey: store.ThreadKey{Page: "1", PSID: strconv.Itoa(i)}})
	})
}

func TestCommitWaitGoesOnceTheGroupIsFull(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "baton.db"), Options{CommitWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	errs := make(chan error, groupTarget)
	for i := range groupTarget {
		go func() { errs <- putThread(db, i) }()
	}
	for range groupTarget {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a full group waited for the hour")
		}
	}
	if c := db.Stats().Commits.Load(); c != 1 {
		t.Fatalf("%d commits for one full group", c)
	}
}

func TestCommitWaitBoundsTheWait(t *testing.T) {
	const wait = 30 * time.Millisecond
	db, err := Open(filepath.Join(t.TempDir(), "baton.db"), Options{CommitWait: wait})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	if err := putThread(db, 1); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < wait {
		t.Fatalf("a lone write committed after %v, before the wait of %v", took, wait)
	}
	if c := db.Stats().Commits.Load(); c != 1 {
		t.Fatalf("%d commits", c)
	}
}
