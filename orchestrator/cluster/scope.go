package cluster

import (
	"sort"
	"sync"
	"time"

	"github.com/batonhq/baton/store"
)

// cell is one lease (one shard at one epoch) from its acquire to its end:
// the renewals move its deadline in place, so every Scope that holds it
// sees them; once dead (lost, released, or past its deadline when a
// renewal came back) it never lives again: the shard needs a new acquire,
// and so a new cell, at a new epoch.
type cell struct {
	mu    sync.Mutex
	lease store.Lease
	dead  bool
}

func newCell(l store.Lease) *cell { return &cell{lease: l} }

// live is the lease and whether it may be acted under at now.
func (c *cell) live(now time.Time) (store.Lease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lease, !c.dead && c.lease.Live(now)
}

// renew takes l's deadline, unless the cell is dead or its deadline
// passed before the renewal came back: a holder that stopped acting at
// its deadline must not start again under the same epoch, whatever the
// database says (the scope it was in may have been given up already).
// It reports whether the cell lives on.
func (c *cell) renew(l store.Lease, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || !c.lease.Live(now) {
		c.dead = true
		return false
	}
	if l.Deadline.After(c.lease.Deadline) {
		c.lease.Deadline = l.Deadline
	}
	return true
}

// kill ends the cell and reports whether it still counted until now (not
// already dead, not past its deadline): a lease that ends by kill while
// it counted is one lost or released, not one that expired.
func (c *cell) kill(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := !c.dead && c.lease.Live(now)
	c.dead = true
	return was
}

// Scope is the set of shards a replica acts for between two calls of
// Run's apply: the set is fixed, the leases in it are renewed in place
// (safe to read from any goroutine), and one that is lost or runs past
// its local deadline stops counting at once, before the next apply tells
// of it. The zero Scope holds nothing.
type Scope struct {
	cells   []*cell // by shard
	byShard map[int]*cell
}

var _ store.Scope = Scope{}

func newScope(cells []*cell) Scope {
	s := Scope{cells: append([]*cell(nil), cells...), byShard: make(map[int]*cell, len(cells))}
	sort.Slice(s.cells, func(i, j int) bool { return s.cells[i].lease.Shard < s.cells[j].lease.Shard })
	for _, c := range s.cells {
		s.byShard[c.lease.Shard] = c
	}
	return s
}

// Shards are the scope's shards, ascending, live or not.
func (s Scope) Shards() []int {
	out := make([]int, len(s.cells))
	for i, c := range s.cells {
		out[i] = c.lease.Shard // fixed for the cell's life: no lock needed
	}
	return out
}

// Leases are the scope's leases that are live now, by shard, with their
// latest deadlines: what a fenced write names.
func (s Scope) Leases() []store.Lease {
	now := time.Now()
	out := make([]store.Lease, 0, len(s.cells))
	for _, c := range s.cells {
		if l, ok := c.live(now); ok {
			out = append(out, l)
		}
	}
	return out
}

// Owns reports whether shard's lease is in the scope and live now, by
// this process's clock.
func (s Scope) Owns(shard int) bool {
	c := s.byShard[shard]
	if c == nil {
		return false
	}
	_, ok := c.live(time.Now())
	return ok
}

// Lease is shard's lease in the scope and whether it is live now.
func (s Scope) Lease(shard int) (store.Lease, bool) {
	c := s.byShard[shard]
	if c == nil {
		return store.Lease{}, false
	}
	return c.live(time.Now())
}

// same says whether s and o hold the same leases (the same cells): an
// apply of o after s would change nothing.
func (s Scope) same(o Scope) bool {
	if len(s.cells) != len(o.cells) {
		return false
	}
	for i := range s.cells {
		if s.cells[i] != o.cells[i] {
			return false
		}
	}
	return true
}
