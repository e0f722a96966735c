// Package live tells open web pages that something changed, over
// server-sent events. A change carries no data: each page then reads
// again what it shows. So a slow browser never holds anything back (its
// one pending change is enough, the next read covers every one it
// missed), and a stream holds only a connection, a goroutine and a
// one-slot channel, bounded in number.
package live

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// Heartbeat keeps a quiet stream open through proxies that close idle
// connections.
const Heartbeat = 25 * time.Second

// Errors Serve returns before it writes anything, for the caller to
// answer in its own format (503).
var (
	ErrTooMany = errors.New("too many open pages")
	ErrClosed  = errors.New("the server is going away")
)

// Hub is the set of open streams.
type Hub struct {
	event string
	max   int

	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	done   chan struct{}
	closed bool
}

// NewHub returns a hub whose streams say event at each change, at most
// max of them open at once.
func NewHub(event string, max int) *Hub {
	return &Hub{event: event, max: max, subs: map[chan struct{}]struct{}{}, done: make(chan struct{})}
}

// Poke tells every open stream of a change; it never blocks.
func (h *Hub) Poke() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default: // a change is already waiting for this page
		}
	}
}

// Close ends every stream and refuses new ones, so that a server's
// shutdown does not wait for them.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

func (h *Hub) subscribe() (chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, ErrClosed
	case len(h.subs) >= h.max:
		return nil, ErrTooMany
	}
	ch := make(chan struct{}, 1)
	h.subs[ch] = struct{}{}
	return ch, nil
}

func (h *Hub) unsubscribe(ch chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, ch)
}

// ServeHTTP serves a stream, or refuses it with a 503 (too many, or
// closing) that the page's EventSource retries.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch err := h.Serve(w, r); {
	case errors.Is(err, ErrTooMany), errors.Is(err, ErrClosed):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// Serve streams r's page the hub's event: once at the start, since a
// page that connects again missed what changed while it was away, then
// at every change, until the page goes or the hub closes. It returns
// ErrTooMany or ErrClosed without writing, or an error if w cannot
// stream.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		return errors.New("streaming unsupported")
	}
	ch, err := h.subscribe()
	if err != nil {
		return err
	}
	defer h.unsubscribe(ch)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	ping := time.NewTicker(Heartbeat)
	defer ping.Stop()
	change := "event: " + h.event + "\ndata: {}\n\n"
	send := func(s string) bool {
		if _, err := io.WriteString(w, s); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send("retry: 2000\n\n" + change) {
		return nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-h.done:
			return nil
		case <-ping.C:
			if !send(": still here\n\n") {
				return nil
			}
		case <-ch:
			if !send(change) {
				return nil
			}
		}
	}
}
