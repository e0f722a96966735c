// Package listen runs the LISTEN sessions of Baton's PostgreSQL store
// (store/postgres): each on a connection of its own, taken out of the pool
// for good, and all of them ended by the store's Close, which the pool's
// Close would not do.
package listen

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonhq/baton/store/groupcommit"
)

// Hub is the listeners of one pool.
type Hub struct {
	pool *pgxpool.Pool
	// closing ends with Close, and with it every Listen; listeners counts
	// them, registered under mu.
	closing   context.Context
	closeNow  context.CancelFunc
	mu        sync.Mutex
	listeners sync.WaitGroup
}

// New is the listeners of pool.
func New(pool *pgxpool.Pool) *Hub {
	h := &Hub{pool: pool}
	h.closing, h.closeNow = context.WithCancel(context.Background())
	return h
}

// Listen calls wake once it listens on channel, and whenever a
// notification with payload comes, until ctx ends (ctx's error), the
// connection breaks (its error) or Close is called (an error that wraps
// groupcommit.ErrClosed). wake runs on the listener's goroutine: it must
// be quick (a send that does not block).
//
// The listener takes a connection out of the pool for good (the pool
// opens another in its place, up to its MaxConns) and closes it when it
// returns: back in the pool, a connection that listened would buffer
// every notification.
func (h *Hub) Listen(ctx context.Context, channel, payload string, wake func()) error {
	lctx, done, err := h.listening(ctx)
	if err != nil {
		return err
	}
	defer done()
	pooled, err := h.pool.Acquire(lctx)
	if err != nil {
		return h.listenErr(ctx, err)
	}
	conn := pooled.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(lctx, `LISTEN `+channel); err != nil {
		return h.listenErr(ctx, err)
	}
	wake()
	for {
		n, err := conn.WaitForNotification(lctx)
		if err != nil {
			return h.listenErr(ctx, err)
		}
		if n.Channel == channel && n.Payload == payload {
			wake()
		}
	}
}

// listening registers a listener, unless the hub is closing: its context
// ends with ctx or with Close, and done unregisters it.
func (h *Hub) listening(ctx context.Context) (context.Context, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing.Err() != nil {
		return nil, nil, fmt.Errorf("postgres: listen for inbound entries: %w", groupcommit.ErrClosed)
	}
	h.listeners.Add(1)
	lctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(h.closing, cancel)
	return lctx, func() { unhook(); cancel(); h.listeners.Done() }, nil
}

// listenErr is what a listener that stopped on err returns: ctx's error
// when ctx ended, groupcommit.ErrClosed when the hub closed.
func (h *Hub) listenErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case h.closing.Err() != nil:
		err = groupcommit.ErrClosed
	}
	return fmt.Errorf("postgres: listen for inbound entries: %w", err)
}

// Close ends the listeners and waits for their connections to close.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closeNow()
	h.mu.Unlock()
	h.listeners.Wait()
}
