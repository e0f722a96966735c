package store

import (
	"context"
	"fmt"
	"time"
)

// OneShard makes a store that one process holds alone (a bbolt file: its
// lock sees to it) the case of Sharded with one shard, always held, at
// epoch 1, so that the orchestrator can run one code path on every
// store. Nothing of the leases is written.
type OneShard struct{ Store }

// forever is the local deadline of a lease nobody else can take.
const forever = 100 * 365 * 24 * time.Hour

// Shards is 1: the store is one shard.
func (d OneShard) Shards() int { return 1 }

// ShardOf is 0 for every thread.
func (d OneShard) ShardOf(ThreadKey) int { return 0 }

func checkLease(shard int, epoch int64) error {
	if shard != 0 {
		return fmt.Errorf("one shard: shard %d: a store one process holds has shard 0 only", shard)
	}
	if epoch != 1 {
		return fmt.Errorf("one shard: epoch %d of shard 0: %w", epoch, ErrFenced)
	}
	return nil
}

// Acquire gives shard 0 to replica at epoch 1, with no deadline: this
// process holds the store, so no other replica can ever take it.
func (d OneShard) Acquire(_ context.Context, replica string, shard int, terms LeaseTerms) (Lease, error) {
	if err := terms.Check(); err != nil {
		return Lease{}, fmt.Errorf("one shard: %w", err)
	}
	if err := checkLease(shard, 1); err != nil {
		return Lease{}, err
	}
	return Lease{Shard: 0, Owner: replica, Epoch: 1, Deadline: time.Now().Add(forever)}, nil
}

// Renew gives l back with a fresh deadline.
func (d OneShard) Renew(_ context.Context, l Lease, terms LeaseTerms) (Lease, error) {
	if err := terms.Check(); err != nil {
		return Lease{}, fmt.Errorf("one shard: %w", err)
	}
	if err := checkLease(l.Shard, l.Epoch); err != nil {
		return Lease{}, err
	}
	l.Deadline = time.Now().Add(forever)
	return l, nil
}

// Release does nothing: there is nobody to hand the shard to.
func (d OneShard) Release(_ context.Context, l Lease) error { return checkLease(l.Shard, l.Epoch) }

// Leases is the one shard, held.
func (d OneShard) Leases(context.Context) ([]ShardLease, error) {
	return []ShardLease{{Shard: 0, Epoch: 1, ExpiresAt: time.Now().Add(forever).UTC(), Held: true}}, nil
}

// UpdateFenced is Update, once the leases are shard 0's at epoch 1.
func (d OneShard) UpdateFenced(ctx context.Context, leases []Lease, fn func(Tx) error) error {
	if len(leases) == 0 {
		return fmt.Errorf("one shard: a fenced update needs at least one lease")
	}
	for _, l := range leases {
		if err := checkLease(l.Shard, l.Epoch); err != nil {
			return err
		}
	}
	return d.Update(ctx, fn)
}

var _ Sharded = OneShard{}
