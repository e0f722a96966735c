package bolt_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/batonhq/baton/store/bolt"
)

// A backup whose client went away stops copying, says why, and leaves
// neither a transaction open nor a temporary copy behind; a copy taken
// is finished before it is read, its transaction already ended.
func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	mustFill(t, filepath.Join(dir, "src.db"), 2000)
	db, err := bolt.Open(filepath.Join(dir, "src.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	leftovers := func() []string {
		all, _ := os.ReadDir(dir)
		var out []string
		for _, e := range all {
			if e.Name() != "src.db" {
				out = append(out, e.Name())
			}
		}
		return out
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := db.Snapshot(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("a backup for a client that left: %v, want context.Canceled", err)
	}
	if n := db.OpenReadTxs(); n != 0 {
		t.Errorf("%d read transactions open after a stopped copy", n)
	}
	if l := leftovers(); len(l) != 0 {
		t.Errorf("a stopped copy left %v", l)
	}

	cp, size, err := db.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := db.OpenReadTxs(); n != 0 {
		t.Errorf("%d read transactions open while the copy is unread", n)
	}
	n, err := io.Copy(io.Discard, cp)
	if err != nil || n != size || size < 100<<10 {
		t.Errorf("read %d bytes of a %d-byte copy: %v", n, size, err)
	}
	if err := cp.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if l := leftovers(); len(l) != 0 {
		t.Errorf("a finished copy left %v", l)
	}
}
