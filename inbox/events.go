package inbox

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// maxStreams bounds the live streams open at once.
const maxStreams = 500

// hub tells every open page that something changed; each page then
// reads what it shows. One pending update per page is enough.
type hub struct {
	mu     sync.Mutex
	subs   map[chan struct{}]bool
	done   chan struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: map[chan struct{}]bool{}, done: make(chan struct{})} }

func (h *hub) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default: // an update is already waiting for this page
		}
	}
}

func (h *hub) subscribe() (chan struct{}, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.subs) >= maxStreams {
		return nil, false
	}
	ch := make(chan struct{}, 1)
	h.subs[ch] = true
	return ch, true
}

func (h *hub) unsubscribe(ch chan struct{}) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// events streams "update" whenever a conversation changes.
func (in *Inbox) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, ok := in.hub.subscribe()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "too many open pages")
		return
	}
	defer in.hub.unsubscribe(ch)
	w.Header().Set("Content-Type", "text/event-stream")
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	send := func(s string) bool {
		if _, err := io.WriteString(w, s); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send("event: update\ndata: {}\n\n") {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-in.hub.done:
			return
		case <-ping.C:
			if !send(": ping\n\n") {
				return
			}
		case <-ch:
			if !send("event: update\ndata: {}\n\n") {
				return
			}
		}
	}
}
