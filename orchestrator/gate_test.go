package orchestrator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// namedGen is a generation whose public handler answers its name, and
// blocks until release when the request asks to.
func namedGen(name string, entered chan<- struct{}, release <-chan struct{}) *generation {
	return &generation{public: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("block") {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, name)
	})}
}

func get(t *testing.T, h http.Handler, ctx context.Context, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", url, nil))
	return rec.Code, rec.Body.String()
}

func isClosed(g *gate) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held != nil
}

// The gate waits for the request in flight before it reports the old
// generation idle, holds a new one until it opens, and serves that one
// on the generation it opened with.
func TestGateHoldsAndDrains(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	g := newGate(namedGen("old", entered, release))
	h := g.handler(publicSide)
	inFlight := make(chan string, 1)
	go func() { _, body := get(t, h, context.Background(), "/webhooks/a?block"); inFlight <- body }()
	<-entered

	closed := make(chan bool, 1)
	go func() { closed <- g.close(10 * time.Second) }()
	for deadline := time.Now().Add(5 * time.Second); !isClosed(g); { // nothing announces it
		if time.Now().After(deadline) {
			t.Fatal("the gate did not close in 5s")
		}
		time.Sleep(time.Millisecond)
	}
	held := make(chan string, 1)
	go func() { _, body := get(t, h, context.Background(), "/webhooks/a"); held <- body }()
	select {
	case <-closed:
		t.Fatal("the gate reported idle with a request in flight")
	case body := <-held:
		t.Fatalf("a request entered the closed gate: %q", body)
	case <-time.After(20 * time.Millisecond): // a bound on what must not happen
	}
	close(release)
	if body := <-inFlight; body != "old" {
		t.Fatalf("in flight answered %q", body)
	}
	if !<-closed {
		t.Fatal("close reported the requests still in flight")
	}
	g.open(namedGen("new", nil, nil))
	if body := <-held; body != "new" {
		t.Fatalf("the held request answered %q, want new", body)
	}
}

// Past its limit, close says the requests did not finish; a client that
// leaves while held gets a 503, and the gate opens again on the old
// generation. A backup or a profile is neither held nor counted.
func TestGateLimitAndExemptions(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	g := newGate(namedGen("old", entered, release))
	h := g.handler(publicSide)
	done := make(chan struct{})
	go func() { get(t, h, context.Background(), "/webhooks/a?block"); close(done) }()
	<-entered
	if g.close(10 * time.Millisecond) {
		t.Fatal("close reported idle with a request in flight")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code, _ := get(t, h, ctx, "/webhooks/a"); code != http.StatusServiceUnavailable {
		t.Fatalf("a client gone while held: %d, want 503", code)
	}
	if code, body := get(t, h, context.Background(), "/debug/pprof/heap"); code != 200 || body != "old" {
		t.Fatalf("a profile while closed: %d %q", code, body)
	}
	g.open(g.current())
	if _, body := get(t, h, context.Background(), "/webhooks/a"); body != "old" {
		t.Fatalf("after the gate opened again: %q", body)
	}
	close(release)
	<-done
}
