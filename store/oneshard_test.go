package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// A store one process holds (here a bbolt file) is one shard, always held
// at epoch 1: the orchestrator's sharded path runs on it unchanged.
func TestLeasesOneShard(t *testing.T) {
	file, err := bolt.Open(filepath.Join(t.TempDir(), "baton.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	db := store.OneShard{Store: file}
	ctx := context.Background()
	terms := store.LeaseTerms{TTL: time.Second, Margin: 100 * time.Millisecond}
	k := store.ThreadKey{Page: "1", PSID: "2"}
	if db.Shards() != 1 || db.ShardOf(k) != 0 {
		t.Fatalf("shards %d, shard of %s %d: want 1 and 0", db.Shards(), k, db.ShardOf(k))
	}
	l, err := db.Acquire(ctx, "me", 0, terms)
	if err != nil || l.Epoch != 1 || !l.Live(time.Now().Add(24*time.Hour)) {
		t.Fatalf("acquire: %+v %v, want epoch 1, live", l, err)
	}
	if l, err = db.Renew(ctx, l, terms); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateFenced(ctx, []store.Lease{l}, func(tx store.Tx) error {
		return tx.AppendHistory(k, store.HistoryEntry{Event: "pass"})
	}); err != nil {
		t.Fatal(err)
	}
	stale := l
	stale.Epoch = 2
	if err := db.UpdateFenced(ctx, []store.Lease{stale}, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("an epoch bolt never gave: %v, want ErrFenced", err)
	}
	if _, err := db.Acquire(ctx, "me", 1, terms); err == nil {
		t.Fatal("acquired shard 1 of a one-shard file")
	}
	if ls, err := db.Leases(ctx); err != nil || len(ls) != 1 || !ls[0].Held {
		t.Fatalf("leases %+v %v", ls, err)
	}
	if err := db.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
}
