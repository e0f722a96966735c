package bolt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs the write functions of concurrent callers in one bbolt
// transaction, so that they share one fsync. By default it has no timer:
// a commit takes whatever queued while the previous one was on disk, which
// adds nothing at low load and batches under high load. With a wait, a
// commit that would hold fewer than groupTarget writes waits up to that
// long for more (it goes as soon as groupTarget are queued): on a machine
// where fsync costs CPU, fewer, larger commits leave more of it to the
// requests. A function that fails is taken out and the rest are run again
// in a new transaction, so one caller's error never loses another's write.
type groupCommit struct {
	d       *DB
	wait    time.Duration
	stats   CommitStats
	mu      sync.Mutex
	queue   []*call
	running bool
	closed  bool
	waiting bool          // the loop waits for more writes
	full    chan struct{} // wakes it when groupTarget are queued
	wg      sync.WaitGroup
}

type call struct {
	fn   func(*tx) error
	err  error
	done chan struct{}
}

// maxGroup bounds one transaction so that a burst does not build a huge one.
const maxGroup = 512

// groupTarget is the group a commit with a wait gathers before it goes.
const groupTarget = 32

var errClosed = errors.New("store closed")

func newGroupCommit(d *DB, wait time.Duration) *groupCommit {
	return &groupCommit{d: d, wait: wait, full: make(chan struct{}, 1)}
}

func (g *groupCommit) do(ctx context.Context, fn func(*tx) error) error {
	c := &call{fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errClosed
	}
	g.queue = append(g.queue, c)
	if g.waiting && len(g.queue) == groupTarget {
		select {
		case g.full <- struct{}{}:
		default:
		}
	}
	if !g.running {
		g.running = true
		g.wg.Add(1)
		go g.loop()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		// The write may still commit; the caller only stops waiting.
		return fmt.Errorf("waiting for commit: %w", ctx.Err())
	}
}

func (g *groupCommit) loop() {
	defer g.wg.Done()
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		if g.wait > 0 && len(g.queue) < groupTarget {
			g.gather()
		}
		n := min(len(g.queue), maxGroup)
		group := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.commit(group)
	}
}

// gather waits, with g.mu held on entry and exit, until groupTarget writes
// are queued or g.wait has passed.
func (g *groupCommit) gather() {
	select {
	case <-g.full: // a stale wake-up from an earlier wait
	default:
	}
	g.waiting = true
	g.mu.Unlock()
	t := time.NewTimer(g.wait)
	select {
	case <-t.C:
	case <-g.full:
		t.Stop()
	}
	g.mu.Lock()
	g.waiting = false
}

// CommitStats count the group commit's work since Open.
type CommitStats struct {
	Commits atomic.Int64 // transactions committed (or failed)
	Calls   atomic.Int64 // write functions run
	Nanos   atomic.Int64 // time spent in transactions, fsync included
	FnNanos atomic.Int64 // of which running the write functions
}

func (g *groupCommit) commit(group []*call) {
	for len(group) > 0 {
		var failed *call
		start := time.Now()
		g.stats.Commits.Add(1)
		g.stats.Calls.Add(int64(len(group)))
		err := g.d.guard(func() error {
			return g.d.db.Update(func(btx *bolt.Tx) error {
				// One wrapper for the whole group: its caches live exactly
				// as long as the transaction, and are dropped with a
				// rollback.
				w := newTx(btx)
				defer func() { g.stats.FnNanos.Add(int64(time.Since(start))) }()
				for _, c := range group {
					if err := c.fn(w); err != nil {
						c.err, failed = err, c
						return err
					}
				}
				return w.flush()
			})
		})
		g.stats.Nanos.Add(int64(time.Since(start)))
		if failed == nil {
			for _, c := range group {
				c.err = err // nil, or the commit's own failure for all
				close(c.done)
			}
			return
		}
		close(failed.done)
		rest := group[:0:0]
		for _, c := range group {
			if c != failed {
				rest = append(rest, c)
			}
		}
		group = rest
	}
}

func (g *groupCommit) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}
