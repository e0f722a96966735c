package postgres

import (
	"context"
	"errors"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/postgres/lease"
)

// The shard leases and heartbeats are package lease's (Acquire, Renew,
// RenewMany, Release, Leases, Heartbeat, Replicas, Leave: the DB's through
// its *lease.Table); what is the store's is the fence its transactions
// check.

// UpdateFenced runs fn in the group commit, as Update does, then fences
// it: the rows of every lease are locked and must still hold its owner and
// epoch and not have run out, by the database's clock, or fn's writes go
// with the rest of its share of the transaction (the group commits
// without it) and the call fails with store.ErrFenced. A thread row fn
// writes for a shard outside leases fails the call with a
// *store.NotOwnedError.
func (d *DB) UpdateFenced(ctx context.Context, leases []store.Lease, fn func(store.Tx) error) error {
	if len(leases) == 0 {
		return errors.New("postgres: a fenced update needs at least one lease")
	}
	f, err := lease.NewFence(leases, d.shards)
	if err != nil {
		return err
	}
	return d.fenced(ctx, f, nil, fn)
}

// fenced runs fn in the group commit under f. owned, when not nil, limits
// fn's scans to those shards and makes the fence a scope's: only the
// leases of the shards fn wrote rows of are checked, so that a lease lost
// in the database fails the writes of its own shard only, and a write of
// no shard's rows (the journal, dedup marks, a sweep) commits whatever
// became of the leases.
func (d *DB) fenced(ctx context.Context, f *lease.Fence, owned []int32, fn func(store.Tx) error) error {
	return d.gc.Do(ctx, func(x *tx) error {
		x.fence, x.fenceErr, x.touched, x.owned = f, nil, map[int]bool{}, owned
		defer func() { x.fence, x.fenceErr, x.touched, x.owned = nil, nil, nil, nil }()
		if err := fn(x); err != nil {
			return err
		}
		if x.late { // the shards fn wrote are known once its queue came back
			if err := x.t.Flush(x.ctx); err != nil {
				return err
			}
			x.late = false
		}
		if x.fenceErr != nil {
			return x.fenceErr
		}
		check := f
		if owned != nil {
			if check = f.Only(x.touched); check.Len() == 0 {
				return x.t.Flush(x.ctx)
			}
		}
		return x.checkFence(check) // the check carries fn's queued writes
	})
}

// checkFence checks f in the transaction, its idle time bounded first.
func (x *tx) checkFence(f *lease.Fence) error {
	if !x.idleBounded {
		lease.BoundIdle(x.t)
		x.idleBounded = true
	}
	return lease.Check(x.ctx, x.t, f)
}

// noteShard is called for every row a transaction writes for shard s of
// thread k: inside a fenced update, s must be one of its leases'.
func (x *tx) noteShard(k store.ThreadKey, s int) {
	switch {
	case x.fence == nil:
	case x.fence.Holds(s):
		x.touched[s] = true
	case x.fenceErr == nil:
		x.fenceErr = &store.NotOwnedError{Key: k, Shard: s}
	}
}

var _ store.Sharded = (*DB)(nil)
