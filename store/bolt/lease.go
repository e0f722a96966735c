package bolt

import (
	"context"
	"fmt"
	"time"

	"github.com/batonhq/baton/store"
)

// A bbolt file has one process (the file lock sees to it), so it is the
// case of store.Sharded with one shard, always held, at epoch 1
// (SCALEOUT.md §6.10): the orchestrator can run one code path on both
// stores. Nothing of the leases is written to the file.

// forever is the local deadline of a lease nobody else can take.
const forever = 100 * 365 * 24 * time.Hour

// Shards is 1: the file is one shard.
func (d *DB) Shards() int { return 1 }

// ShardOf is 0 for every thread.
func (d *DB) ShardOf(store.ThreadKey) int { return 0 }

func checkLease(shard int, epoch int64) error {
	if shard != 0 {
		return fmt.Errorf("bolt: shard %d: a bbolt file has shard 0 only", shard)
	}
	if epoch != 1 {
		return fmt.Errorf("bolt: epoch %d of shard 0: %w", epoch, store.ErrFenced)
	}
	return nil
}

// Acquire gives shard 0 to replica at epoch 1, with no deadline: this
// process holds the file, so no other replica can ever take it.
func (d *DB) Acquire(_ context.Context, replica string, shard int, terms store.LeaseTerms) (store.Lease, error) {
	if err := terms.Check(); err != nil {
		return store.Lease{}, fmt.Errorf("bolt: %w", err)
	}
	if err := checkLease(shard, 1); err != nil {
		return store.Lease{}, err
	}
	return store.Lease{Shard: 0, Owner: replica, Epoch: 1, Deadline: time.Now().Add(forever)}, nil
}

// Renew gives l back with a fresh deadline.
func (d *DB) Renew(_ context.Context, l store.Lease, terms store.LeaseTerms) (store.Lease, error) {
	if err := terms.Check(); err != nil {
		return store.Lease{}, fmt.Errorf("bolt: %w", err)
	}
	if err := checkLease(l.Shard, l.Epoch); err != nil {
		return store.Lease{}, err
	}
	l.Deadline = time.Now().Add(forever)
	return l, nil
}

// Release does nothing: there is nobody to hand the shard to.
func (d *DB) Release(_ context.Context, l store.Lease) error { return checkLease(l.Shard, l.Epoch) }

// Leases is the one shard, held.
func (d *DB) Leases(context.Context) ([]store.ShardLease, error) {
	return []store.ShardLease{{Shard: 0, Epoch: 1, ExpiresAt: time.Now().Add(forever).UTC(), Held: true}}, nil
}

// UpdateFenced is Update, once the leases are shard 0's at epoch 1.
func (d *DB) UpdateFenced(ctx context.Context, leases []store.Lease, fn func(store.Tx) error) error {
	if len(leases) == 0 {
		return fmt.Errorf("bolt: a fenced update needs at least one lease")
	}
	for _, l := range leases {
		if err := checkLease(l.Shard, l.Epoch); err != nil {
			return err
		}
	}
	return d.Update(ctx, fn)
}

var _ store.Sharded = (*DB)(nil)
