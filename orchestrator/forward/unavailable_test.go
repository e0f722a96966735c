package forward

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/orchestrator/apierr"
)

// When no replica can answer now, the client is told 503 with
// Retry-After, and nothing is forwarded twice: an owner nobody knows,
// this replica named the owner, an owner that answers 421 too, an owner
// that does not answer, a body too large to replay.
func TestOwnerChanging(t *testing.T) {
	a := newReplica(t, "A", 4<<10, false)
	b := newReplica(t, "B", 4<<10, false)
	b.own(5)
	// A's view: 2 nobody's, 3 its own (its handler says not), 4 B's (B's
	// handler says not: it moved), 5 B's, 6 at an address nothing
	// listens on.
	a.owners.set(3, "A", a.internal.URL)
	a.owners.set(4, "B", b.internal.URL)
	a.owners.set(5, "B", b.internal.URL)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close()
	a.owners.set(6, "C", gone)
	c := testClient(t)
	for _, tc := range []struct {
		name    string
		path    string
		body    string
		outcome string
		atB     int64 // requests that reach B's internal listener
	}{
		{"owner unknown", "/v1/threads/2/pass", `{}`, "no_owner", 0},
		{"owner is this replica", "/v1/threads/3/pass", `{}`, "self", 0},
		{"owner answers 421 too", "/v1/threads/4/pass", `{}`, "moved", 1},
		{"owner unreachable", "/v1/threads/6/pass", `{}`, "unreachable", 0},
		{"body over MaxBody", "/v1/threads/5/pass", strings.Repeat("x", 4<<10+1), "too_large", 0},
		{"body over MaxBody, h read none", "/v1/threads/5/pass?read=none", strings.Repeat("x", 64<<10), "too_large", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			atA, atB := a.internalHits.Load(), b.internalHits.Load()
			resp, err := c.Post(a.public.URL+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Error struct {
					Code      apierr.Code `json:"code"`
					Retryable bool        `json:"retryable"`
				} `json:"error"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || err != nil ||
				body.Error.Code != apierr.OwnerChanging || !body.Error.Retryable {
				t.Fatalf("%d Retry-After %q %+v %v, want 503, 1, owner_changing", resp.StatusCode, resp.Header.Get("Retry-After"), body, err)
			}
			if resp.Header.Get(apierr.ShardHeader) != "" || resp.Header.Get("X-Junk") != "" {
				t.Fatalf("the 421's headers leaked: %v", resp.Header)
			}
			if got := b.internalHits.Load() - atB; got != tc.atB {
				t.Fatalf("%d requests reached B, want %d", got, tc.atB)
			}
			if got := a.internalHits.Load() - atA; got != 0 {
				t.Fatalf("%d requests came back to A, want none", got)
			}
			if got := a.forwarded(tc.outcome); got < 1 {
				t.Fatalf("outcome %s not counted", tc.outcome)
			}
		})
	}
	if n := b.served.Load(); n != 0 {
		t.Fatalf("B's handler answered %d requests itself, want none", n)
	}
}

// A forwarded request is answered where it arrives, even when the
// internal listener's chain has Wrap in it: B's 421 goes back to A, which
// does not forward again, and nothing reaches A's internal listener.
func TestNoSecondHop(t *testing.T) {
	a := newReplica(t, "A", testMax, false)
	b := newReplica(t, "B", testMax, true) // Internal(Wrap(h))
	a.owners.set(7, "B", b.internal.URL)
	b.owners.set(7, "A", a.internal.URL) // B thinks it is A's
	c := testClient(t)
	resp, err := c.Post(a.public.URL+"/v1/threads/7/pass", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("%d, want 503", resp.StatusCode)
	}
	if a.internalHits.Load() != 0 || b.internalHits.Load() != 1 || a.forwarded("moved") != 1 {
		t.Fatalf("hits: A %d, B %d; moved %v: want 0, 1, 1", a.internalHits.Load(), b.internalHits.Load(), a.forwarded("moved"))
	}
}

// The 503 takes the API's own shape when the wiring says so: /graph's is
// Meta's transient error.
func TestUnavailableShape(t *testing.T) {
	a := newReplica(t, "A", testMax, false, func(o *Options, _ *replica) {
		o.Unavailable = func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"code":2,"is_transient":true}}`)
		}
	})
	c := testClient(t)
	resp, err := c.Post(a.public.URL+"/v1/threads/9/pass", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || string(got) != `{"error":{"code":2,"is_transient":true}}` {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), got)
	}
}

// During a hand-off the shard has no owner for a moment: the request
// waits for one (OwnerWait) and gets its answer rather than a 503.
func TestWaitsForTheNextOwner(t *testing.T) {
	asked := make(chan struct{}, 1)
	a := newReplica(t, "A", testMax, false, func(o *Options, rp *replica) {
		o.OwnerWait = 5 * time.Second
		inner := o.Owners
		o.Owners = ownersFunc(func(shard int) (string, string, bool) {
			select {
			case asked <- struct{}{}:
			default:
			}
			return inner.Owner(shard)
		})
	})
	b := newReplica(t, "B", testMax, false)
	b.own(8)
	c := testClient(t)
	type answer struct {
		status int
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := c.Post(a.public.URL+"/v1/threads/8/pass", "application/json", strings.NewReader(`{}`))
		if err != nil {
			done <- answer{0, err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- answer{resp.StatusCode, nil}
	}()
	<-asked // A asked, and nobody held shard 8: now B takes it
	a.owners.set(8, "B", b.internal.URL)
	got := <-done
	if got.err != nil || got.status/100 != 2 {
		t.Fatalf("%d %v, want B's 2xx once B held the shard", got.status, got.err)
	}
	if b.internalHits.Load() != 1 || a.forwarded("forwarded") != 1 {
		t.Fatalf("B's internal listener %d hits, forwarded %v: want 1, 1", b.internalHits.Load(), a.forwarded("forwarded"))
	}
}

type ownersFunc func(shard int) (string, string, bool)

func (f ownersFunc) Owner(shard int) (string, string, bool) { return f(shard) }
