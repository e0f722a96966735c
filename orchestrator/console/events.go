package console

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// hub tells the open consoles that something changed (a line in a
// transcript, a change of control, a dead letter): each then reads again
// what it shows. A change carries no data, so a slow browser never holds
// anything back: its one-slot channel is full, and the next read covers
// every change it missed.
type hub struct {
	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: map[chan struct{}]struct{}{}} }

// maxStreams bounds the open event streams (each holds a connection and
// a goroutine).
const maxStreams = 64

func (h *hub) subscribe() (chan struct{}, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.subs) >= maxStreams {
		return nil, false
	}
	ch := make(chan struct{}, 1)
	h.subs[ch] = struct{}{}
	return ch, true
}

func (h *hub) unsubscribe(ch chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

// poke tells every stream of a change; it never blocks.
func (h *hub) poke() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// close ends every stream, and refuses new ones: the listener is going.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

// heartbeat keeps a quiet stream open through proxies that close idle
// connections.
const heartbeat = 25 * time.Second

// events serves GET /console/api/events, server-sent events: "change"
// whenever something the console shows may have changed.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, ok := c.hub.subscribe()
	if !ok {
		http.Error(w, "too many open consoles", http.StatusServiceUnavailable)
		return
	}
	defer c.hub.unsubscribe(ch)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case _, open := <-ch:
			if !open {
				return
			}
			fmt.Fprint(w, "event: change\ndata: {}\n\n")
		case <-c.d.Clock.After(heartbeat):
			fmt.Fprint(w, ": still here\n\n")
		}
		fl.Flush()
	}
}
