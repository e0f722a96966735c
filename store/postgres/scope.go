package postgres

import (
	"context"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/postgres/lease"
)

// Scoped is the store as the replica of sc sees it, in cluster mode. Its
// Update is fenced by sc's live leases, taken when it is called, in the
// same transaction, as UpdateFenced is: a thread's row written for a
// shard sc does not own fails the call with a *store.NotOwnedError
// (errors.Is ErrFenced), nothing of it written, and the leases of the
// shards written must still be theirs at COMMIT, by the database
// (store.ErrFenced otherwise). A write of no thread's rows (the journal,
// dedup marks, inbound entries appended, deletion requests, sweeps by
// age) is no shard's: it commits whatever the leases, even with none
// live. View and Update read as the DB's do, but for the scans of the
// replica's own work (Lanes, DueTimers, NextTimer, DueJobs, NextJob,
// Jobs, Intents), which keep to the shards of sc's live leases. Close
// does nothing: the DB outlives its scopes.
func (d *DB) Scoped(sc store.Scope) store.Store { return scoped{d: d, sc: sc} }

type scoped struct {
	d  *DB
	sc store.Scope
}

func (s scoped) Update(ctx context.Context, fn func(store.Tx) error) error {
	f, err := lease.NewFence(s.sc.Leases(), s.d.shards)
	if err != nil {
		return err
	}
	return s.d.fenced(ctx, f, owned(f.Shards()), fn)
}

func (s scoped) View(fn func(store.ReadTx) error) error {
	f, err := lease.NewFence(s.sc.Leases(), s.d.shards)
	if err != nil {
		return err
	}
	return s.d.view(owned(f.Shards()), fn)
}

func (s scoped) Close() error { return nil }

// owned is the scan filter of shards: never nil, which would be every
// shard.
func owned(shards []int32) []int32 {
	if shards == nil {
		return []int32{}
	}
	return shards
}
