package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Shard leases (SCALEOUT.md §6.1): threads are split into a fixed number
// of shards, and each shard is written by one replica at a time, the
// holder of its lease. A lease names an epoch that grows at every change
// of holder; a write made under a lease checks, in its own transaction,
// that the epoch is still the shard's and the lease has not run out by
// the database's clock, so a replica that lost its lease (paused, cut
// off, or simply slow) can never write with it again.
//
// store/bolt is one process: it holds every lease of its one shard,
// always, at epoch 1.

// ErrFenced is the failure of a write, renewal or release made under a
// lease that is no longer the shard's: another replica acquired it (a
// higher epoch), or it ran out by the database's clock. Nothing of the
// transaction was written. The holder must stop acting for the shard and
// acquire it again (at a new epoch) before it writes.
var ErrFenced = errors.New("fenced: the shard's lease is no longer this one")

// ErrLeaseHeld is returned by an Acquire while another replica's lease on
// the shard has not run out.
var ErrLeaseHeld = errors.New("the shard's lease is held by another replica")

// LeaseTerms are how long a lease lasts and how much earlier its holder
// stops acting.
type LeaseTerms struct {
	// TTL is the lease's length by the database's clock, from the moment
	// the acquire or renewal ran there.
	TTL time.Duration
	// Margin is taken off the TTL for the holder's local deadline, so that
	// it stops acting (Graph calls, deliveries) before the lease can pass
	// to another replica, whatever the offset of the two clocks; it covers
	// the request's time on the wire and a bounded drift.
	Margin time.Duration
}

// Check says what is wrong with t.
func (t LeaseTerms) Check() error {
	if t.TTL <= 0 {
		return fmt.Errorf("lease TTL %v: want more than 0", t.TTL)
	}
	if t.Margin < 0 || t.Margin >= t.TTL {
		return fmt.Errorf("lease margin %v: want at least 0 and less than the TTL (%v)", t.Margin, t.TTL)
	}
	return nil
}

// Lease is a replica's hold on one shard.
type Lease struct {
	Shard int
	// Owner is the replica holding it (its id: a configured name and a
	// boot nonce, so that a restart is a new owner).
	Owner string
	// Epoch is the shard's fence: it grows at every change of holder.
	Epoch int64
	// Deadline is the holder's local deadline: the moment the acquire or
	// renewal was sent, by this process's monotonic clock, plus the TTL
	// minus the margin. Past it, the holder must act as if it had lost
	// the shard: the database may hand it to another replica soon after.
	Deadline time.Time
}

// Live says whether the holder may still act under l at now (by the
// holder's clock).
func (l Lease) Live(now time.Time) bool { return now.Before(l.Deadline) }

func (l Lease) String() string {
	return fmt.Sprintf("shard %d epoch %d (%s)", l.Shard, l.Epoch, l.Owner)
}

// ShardLease is one shard's lease row as the database has it.
type ShardLease struct {
	Shard int
	Owner string // "" when no replica ever held it
	Epoch int64
	// ExpiresAt is when the lease runs out, by the database's clock.
	ExpiresAt time.Time
	// Held says the lease had not run out when it was read.
	Held bool
}

// Sharded is a store whose threads are split into shards, each written
// under the lease of one replica at a time. The operations take the
// replica's id; the database's clock decides who holds what.
type Sharded interface {
	Store
	// Shards is the fixed number of shards; ShardOf, thread k's.
	Shards() int
	ShardOf(k ThreadKey) int

	// Acquire takes a free shard or one whose lease ran out, at the next
	// epoch (a replica re-acquiring its own lost shard gets a new epoch
	// too); ErrLeaseHeld while another replica's lease holds.
	Acquire(ctx context.Context, replica string, shard int, terms LeaseTerms) (Lease, error)
	// Renew extends l while it is still the shard's and has not run out;
	// ErrFenced otherwise.
	Renew(ctx context.Context, l Lease, terms LeaseTerms) (Lease, error)
	// Release ends l now, so that another replica may acquire the shard at
	// once (a graceful hand-off); ErrFenced if it was no longer the shard's.
	Release(ctx context.Context, l Lease) error
	// Leases lists every shard's lease row, by shard.
	Leases(ctx context.Context) ([]ShardLease, error)

	// UpdateFenced runs fn as Update does, and commits only if every lease
	// in leases is still its shard's, by the database, in the same
	// transaction: ErrFenced (wrapped) otherwise, with nothing of fn
	// written. A row fn writes for a shard outside leases fails the call.
	UpdateFenced(ctx context.Context, leases []Lease, fn func(Tx) error) error
}

// Replica is one replica's heartbeat as the database has it.
type Replica struct {
	ID   string
	Addr string // where other replicas reach it
	// ExpiresAt is when its heartbeat runs out, by the database's clock;
	// Live, that it had not when read.
	ExpiresAt time.Time
	Live      bool
}
