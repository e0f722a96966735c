package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Several replicas on one sharded store (store/postgres): each acts for
// the shards it holds leases on, its Scope. What a replica does for a
// thread of another shard (a bot's call, an operator's pass) it hands to
// that shard's owner; what any replica accepts (a webhook) it queues for
// the owner, durably, as InboundEntry records.

// Scope is the part of a sharded store one replica acts for: the shards
// it held leases on when the scope was made. The set is fixed for the
// life of the scope (a change of set makes a new one); the leases in it
// are renewed in place, and one that is lost (renewal refused, or its
// local deadline passed) stops counting at once.
type Scope interface {
	// Shards are the scope's shards, ascending, whether or not their
	// leases are still live.
	Shards() []int
	// Leases are the scope's live leases now, by shard: what a write is
	// fenced with.
	Leases() []Lease
	// Owns reports whether shard's lease is in the scope and live now, by
	// this process's clock (the lease's local deadline).
	Owns(shard int) bool
}

// NotOwnedError is a write, or a call, for thread Key, of shard Shard,
// that a replica does not act for: the shard's owner must do it. It wraps
// ErrFenced: nothing of the write happened. The APIs answer it with 421
// Misdirected Request, which the cluster's forwarding turns into the
// owner's answer.
type NotOwnedError struct {
	Key   ThreadKey
	Shard int
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("thread %s is in shard %d, which this replica does not hold", e.Key, e.Shard)
}

func (e *NotOwnedError) Unwrap() error { return ErrFenced }

// InboundEntry is one hosted app's copy of one webhook event that a
// replica accepted (it is durable before the 200) and that its thread's
// shard owner has not yet routed.
type InboundEntry struct {
	// Seq is assigned by AppendInbound: entries of a shard are routed in
	// Seq order, and an entry appended after another one committed has a
	// higher Seq.
	Seq        uint64          `json:"seq"`
	Shard      int             `json:"shard"`
	App        string          `json:"app"`     // the hosted app it came to (name)
	Page       string          `json:"page_id"` // the entry's id
	PSID       string          `json:"psid"`    // the person, "" for page-level events
	Channel    string          `json:"channel"` // messaging or standby
	ReceivedAt time.Time       `json:"received_at"`
	Event      json.RawMessage `json:"event"` // the event's bytes as Meta sent them
}

// InboundTx is the Tx of a store that queues inbound entries.
type InboundTx interface {
	Tx
	// AppendInbound queues e (its Shard set by the caller) and assigns
	// its Seq; once the transaction commits, listeners are told.
	AppendInbound(e *InboundEntry) error
	// DeleteInbound removes a routed entry, as Inbound listed it (its Seq
	// and its Shard); inside a fenced update, its shard must be one of
	// the leases'.
	DeleteInbound(e InboundEntry) error
}

// Inbound is the queue's reading side, for the owners that route it.
type Inbound interface {
	// PendingInbound lists the oldest entries of shards, in Seq order, at
	// most limit.
	PendingInbound(ctx context.Context, shards []int, limit int) ([]InboundEntry, error)
	// ListenInbound calls wake whenever entries may have been appended
	// (by any replica), until ctx ends; it returns ctx's error, or the
	// connection's when it broke (the caller listens again, and reads the
	// queue, since what was appended meanwhile was not told).
	ListenInbound(ctx context.Context, wake func()) error
}
