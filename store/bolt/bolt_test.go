package bolt

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/storetest"
)

// MustOpen opens a store in dir, closed when the test ends.
func MustOpen(tb testing.TB, dir string) store.Store {
	tb.Helper()
	db, err := Open(filepath.Join(dir, "baton.db"), time.Second)
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
	if _, err := Open(filepath.Join(dir, "baton.db"), 50*time.Millisecond); err == nil {
		t.Fatal("a second process could open the same file")
	}
}
