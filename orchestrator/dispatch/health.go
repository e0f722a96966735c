package dispatch

import (
	"sync"
	"time"
)

// Health is what the dispatcher knows of each bot: since when its
// deliveries fail, and when it last delivered. The failover rule reads
// it; the dispatcher rebuilds it from the outbox at start.
type Health struct {
	mu   sync.Mutex
	bots map[string]*botHealth // by app name
}

type botHealth struct {
	failingSince time.Time // zero while deliveries succeed
	lastOK       time.Time
}

// NewHealth returns the health of bots nobody has heard from.
func NewHealth() *Health { return &Health{bots: map[string]*botHealth{}} }

func (h *Health) of(app string) *botHealth {
	b := h.bots[app]
	if b == nil {
		b = &botHealth{}
		h.bots[app] = b
	}
	return b
}

// Failed records a failed delivery created at since.
func (h *Health) Failed(app string, since time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b := h.of(app); b.failingSince.IsZero() || since.Before(b.failingSince) {
		b.failingSince = since
	}
}

// Delivered records a success and reports whether the bot was failing.
func (h *Health) Delivered(app string, now time.Time) (recovered bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.of(app)
	recovered = !b.failingSince.IsZero()
	b.failingSince, b.lastOK = time.Time{}, now
	return recovered
}

// FailingSince is when the bot's oldest failing delivery was created.
func (h *Health) FailingSince(app string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.of(app)
	return b.failingSince, !b.failingSince.IsZero()
}

// Recovered reports whether the bot delivered since t and is not failing.
func (h *Health) Recovered(app string, t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.of(app)
	return b.failingSince.IsZero() && !b.lastOK.Before(t)
}
