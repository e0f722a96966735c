// Package groupcommit runs the write functions of concurrent callers in
// one transaction, so that they share one durable commit (one fsync for
// bbolt, one COMMIT for a database). It knows nothing of the store behind
// it: a Runner opens, runs and commits one transaction.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Group runs the write functions of concurrent callers in one
// transaction, so that they share one commit. By default it has no timer:
// a commit takes whatever queued while the previous one was on disk, which
// adds nothing at low load and batches under high load. With a wait, a
// commit that would hold fewer than Target writes waits up to that
// long for more (it goes as soon as Target are queued): on a machine
// where fsync costs CPU, fewer, larger commits leave more of it to the
// requests. A function that fails is taken out and the rest are run again
// in a new transaction, so one caller's error never loses another's write.
type Group[T any] struct {
	run     Runner[T]
	wait    time.Duration
	stats   Stats
	mu      sync.Mutex
	queue   []*call[T]
	running bool
	closed  bool
	waiting bool          // the loop waits for more writes
	full    chan struct{} // wakes it when Target are queued
	wg      sync.WaitGroup
}

type call[T any] struct {
	fn   func(T) error
	err  error
	done chan struct{}
}

// maxGroup bounds one transaction so that a burst does not build a huge one.
const maxGroup = 512

// Target is the group a commit with a wait gathers before it goes.
const Target = 32

// ErrClosed is the error of a write offered after Close.
var ErrClosed = errors.New("store closed")

// Runner runs fn in one new transaction and commits it when fn returns
// nil; when fn fails it rolls the transaction back and returns fn's error.
type Runner[T any] func(fn func(T) error) error

// New returns a Group committing through run. wait > 0 lets a commit that
// would hold fewer than 32 writes wait up to that long for more.
func New[T any](run Runner[T], wait time.Duration) *Group[T] {
	return &Group[T]{run: run, wait: wait, full: make(chan struct{}, 1)}
}

// Do queues fn for the next transaction and returns once it committed
// (nil), failed (fn's error, or the commit's), or ctx ended: then the
// write may still commit, and the caller only stops waiting.
func (g *Group[T]) Do(ctx context.Context, fn func(T) error) error {
	c := &call[T]{fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.queue = append(g.queue, c)
	if g.waiting && len(g.queue) == Target {
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

func (g *Group[T]) loop() {
	defer g.wg.Done()
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		if g.wait > 0 && len(g.queue) < Target {
			g.gather()
		}
		n := min(len(g.queue), maxGroup)
		group := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.commit(group)
	}
}

// gather waits, with g.mu held on entry and exit, until Target writes
// are queued or g.wait has passed.
func (g *Group[T]) gather() {
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

// Stats count a Group's work since New.
type Stats struct {
	Commits atomic.Int64 // transactions committed (or failed)
	Calls   atomic.Int64 // write functions run
	Nanos   atomic.Int64 // time spent in transactions, fsync included
	FnNanos atomic.Int64 // of which running the write functions
}

// Queued is how many writes wait for the next transaction.
func (g *Group[T]) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// Stats are the live counters.
func (g *Group[T]) Stats() *Stats { return &g.stats }

func (g *Group[T]) commit(group []*call[T]) {
	for len(group) > 0 {
		var failed *call[T]
		start := time.Now()
		g.stats.Commits.Add(1)
		g.stats.Calls.Add(int64(len(group)))
		err := g.run(func(t T) error {
			defer func() { g.stats.FnNanos.Add(int64(time.Since(start))) }()
			for _, c := range group {
				if err := c.fn(t); err != nil {
					c.err, failed = err, c
					return err
				}
			}
			return nil
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

// Close refuses new writes and waits for the queued ones.
func (g *Group[T]) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}
