package orchestrator

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// gate stands in front of both listeners' handlers: each request is
// served by the generation current when it enters, and a reload closes
// the gate to hold new requests while it waits for those in flight and
// swaps the generation. The listeners and their connections stay open
// throughout.
type gate struct {
	mu       sync.Mutex
	cur      *generation
	held     chan struct{} // while closed; closed by open
	inflight int
	idle     chan struct{} // while close waits; closed when inflight is 0
}

func newGate(g *generation) *gate { return &gate{cur: g} }

func (g *gate) current() *generation {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

// enter waits while the gate is closed and counts the request in flight
// on the current generation; false means the client left first.
func (g *gate) enter(r *http.Request) (*generation, bool) {
	g.mu.Lock()
	for g.held != nil {
		held := g.held
		g.mu.Unlock()
		select {
		case <-held:
		case <-r.Context().Done():
			return nil, false
		}
		g.mu.Lock()
	}
	g.inflight++
	cur := g.cur
	g.mu.Unlock()
	return cur, true
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if g.inflight == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
}

// close holds new requests and waits up to limit for the ones in
// flight; it reports whether they all finished. The gate stays closed
// either way, until open.
func (g *gate) close(limit time.Duration) bool {
	g.mu.Lock()
	g.held = make(chan struct{})
	if g.inflight == 0 {
		g.mu.Unlock()
		return true
	}
	idle := make(chan struct{})
	g.idle = idle
	g.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.idle = nil
	select {
	case <-idle: // the last one left as the time ran out
		return true
	default:
		return false
	}
}

// open makes cur the generation that serves and lets the held requests
// go on.
func (g *gate) open(cur *generation) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur = cur
	if g.held != nil {
		close(g.held)
		g.held = nil
	}
}

// handler serves side's handler of the generation a request entered on.
// The long reads that touch only the store (a backup, a profile) are
// neither held nor waited for: they would hold a reload for minutes, and
// they are as right on the old generation as on the new.
func (g *gate) handler(side func(*generation) http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if storeOnly(r.URL.Path) {
			side(g.current()).ServeHTTP(w, r)
			return
		}
		gen, ok := g.enter(r)
		if !ok {
			// The client left while a reload held its request.
			http.Error(w, "reloading", http.StatusServiceUnavailable)
			return
		}
		defer g.leave()
		side(gen).ServeHTTP(w, r)
	})
}

// storeOnly reports the admin paths that stream from the store alone.
func storeOnly(path string) bool {
	return path == "/admin/backup" || strings.HasPrefix(path, "/debug/pprof/")
}

func publicSide(g *generation) http.Handler { return g.public }
func adminSide(g *generation) http.Handler  { return g.admin }
