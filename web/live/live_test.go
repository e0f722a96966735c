package live

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, ctx context.Context, url string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, bufio.NewReader(resp.Body)
}

// next reads one event (or comment) block.
func next(rd *bufio.Reader) string {
	var block string
	for {
		line, err := rd.ReadString('\n')
		if err != nil || line == "\n" {
			return block
		}
		block += line
	}
}

func TestHub(t *testing.T) {
	h := NewHub("change", 2)
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, rd := open(t, ctx, srv.URL)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	if b := next(rd); b != "retry: 2000\n" {
		t.Fatalf("first block %q", b)
	}
	// At once: the page reads what it shows.
	if b := next(rd); b != "event: change\ndata: {}\n" {
		t.Fatalf("on connecting %q", b)
	}
	// Pokes while the page reads coalesce: one slot per page.
	h.Poke()
	h.Poke()
	h.Poke()
	if b := next(rd); b != "event: change\ndata: {}\n" {
		t.Fatalf("after pokes %q", b)
	}

	// The bound: a second stream, then a third refused.
	resp2, rd2 := open(t, ctx, srv.URL)
	defer resp2.Body.Close()
	next(rd2)
	next(rd2)
	resp3, _ := open(t, ctx, srv.URL)
	resp3.Body.Close()
	if resp3.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third stream of at most 2: %d", resp3.StatusCode)
	}

	// Close ends the open streams and refuses new ones.
	h.Close()
	for _, r := range []*bufio.Reader{rd, rd2} {
		if _, err := io.ReadAll(r); err != nil || ctx.Err() != nil {
			t.Fatalf("a stream after Close: %v %v", err, ctx.Err())
		}
	}
	w := httptest.NewRecorder()
	if err := h.Serve(w, httptest.NewRequest("GET", "/", nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
