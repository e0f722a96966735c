package forward

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/orchestrator/apierr"
)

const (
	botToken   = "Bearer bot-token-SECRET-0123456789"
	queryToken = "graph-token-SECRET-0123456789"
	testMax    = 256 << 10
)

// A request A answers 421 for reaches B, the shard's owner, and the
// client gets B's status, headers and body; B sees the request as the
// client sent it to A: method, request URI, body byte for byte, the
// client's headers but the hop-by-hop ones, the client's address.
func TestForwardedToOwner(t *testing.T) {
	a := newReplica(t, "A", testMax, false)
	b := newReplica(t, "B", testMax, false)
	b.own(1)
	a.owners.set(1, "B", b.internal.URL)
	binary := make([]byte, 200<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range binary {
		binary[i] = byte(rng.UintN(256))
	}
	form := url.Values{"recipient": {`{"id":"1234"}`}, "message": {"é & = +"}}.Encode()
	c := testClient(t)
	for _, tc := range []struct {
		name, method, query, contentType string
		body                             []byte
		addr                             string // the owner's address as Owners gives it; "" the URL
	}{
		{"JSON, read whole", http.MethodPost, "", "application/json", []byte(`{"recipient":{"id":"1234"},"metadata":"ü\n"}`), ""},
		{"a form, parsed", http.MethodPost, "read=form", "application/x-www-form-urlencoded", []byte(form), ""},
		{"binary, 10 bytes read, then closed", http.MethodPost, "read=10", "application/octet-stream", binary, ""},
		{"not read at all", http.MethodPut, "read=none", "text/plain", bytes.Repeat([]byte("x"), 5000), ""},
		{"exactly MaxBody", http.MethodPost, "", "application/octet-stream", bytes.Repeat([]byte{0xfe}, testMax), ""},
		{"no body", http.MethodGet, "", "", nil, ""},
		{"owner as host:port", http.MethodDelete, "read=none", "", nil, strings.TrimPrefix(b.internal.URL, "http://")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.addr != "" {
				a.owners.set(1, "B", tc.addr)
				defer a.owners.set(1, "B", b.internal.URL)
			}
			q := url.Values{"access_token": {queryToken}, "odd": {"a b/c%"}}
			uri := "/v1/threads/1/pass?" + q.Encode()
			if tc.query != "" {
				uri += "&" + tc.query
			}
			var rd io.Reader
			if body != nil {
				rd = bytes.NewReader(body)
			}
			req, _ := http.NewRequest(tc.method, a.public.URL+uri, rd)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			req.Header.Set("Authorization", botToken)
			req.Header.Set("X-Baton-CSRF", "csrf-token")
			req.Header.Set("Connection", "X-Hop")
			req.Header.Set("X-Hop", "dropped")
			req.Header.Set(HeaderClient, "6.6.6.6:1") // forged: only a replica's counts
			req.Header.Set(HeaderForwardedBy, "Z")
			before := b.internalHits.Load()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e echo
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("%d: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Served-By") != "B" || len(resp.Header.Values("Set-Cookie")) != 2 {
				t.Fatalf("%d %v, want B's 201 and its headers", resp.StatusCode, resp.Header)
			}
			if resp.Header.Get("X-Junk") != "" || resp.Header.Get(apierr.ShardHeader) != "" {
				t.Fatalf("A's 421 leaked its headers: %v", resp.Header)
			}
			a.mu.Lock()
			remote := a.lastRemote
			a.mu.Unlock()
			switch {
			case e.ServedBy != "B" || e.ForwardedBy != "A":
				t.Fatalf("served by %q, forwarded by %q", e.ServedBy, e.ForwardedBy)
			case e.Method != tc.method || e.URI != uri || e.Host != strings.TrimPrefix(a.public.URL, "http://"):
				t.Fatalf("B was asked %s %s (Host %s), want %s %s", e.Method, e.URI, e.Host, tc.method, uri)
			case !bytes.Equal(e.Body, body):
				t.Fatalf("B got a body of %d bytes, want the %d sent", len(e.Body), len(body))
			case e.Remote != remote || e.Client != remote:
				t.Fatalf("B saw the client at %q (%s %q), A at %q", e.Remote, HeaderClient, e.Client, remote)
			case e.Auth != botToken || e.CSRF != "csrf-token" || e.Hop != "":
				t.Fatalf("headers at B: Authorization %q, X-Baton-CSRF %q, X-Hop %q", e.Auth, e.CSRF, e.Hop)
			case tc.query == "read=form" && e.Form.Get("message") != "é & = +":
				t.Fatalf("form at B: %v", e.Form)
			}
			if got := b.internalHits.Load() - before; got != 1 {
				t.Fatalf("%d requests reached B's internal listener, want 1", got)
			}
		})
	}
	if got := a.forwarded("forwarded"); got != 7 {
		t.Fatalf("baton_cluster_forwarded_total{outcome=forwarded} = %v, want 7", got)
	}
	a.public.Close()
	b.internal.Close()
	for _, rp := range []*replica{a, b} {
		rp.noSecretsLogged(t, "SECRET", queryToken, string(testSecret))
	}
	if n := a.logs.FilterMessage("forwarded to the thread's owner").Len(); n != 7 {
		t.Fatalf("%d debug lines of forwards, want 7", n)
	}
}

// What is not a 421 with a shard goes to the client as h wrote it, and
// nothing is forwarded.
func TestOtherAnswersUntouched(t *testing.T) {
	a := newReplica(t, "A", testMax, false)
	b := newReplica(t, "B", testMax, false)
	a.own(0)
	a.owners.set(0, "B", b.internal.URL) // a stale view: A's handler decides
	c := testClient(t)
	resp, err := c.Post(a.public.URL+"/v1/threads/0/take", "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	var e echo
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || e.ServedBy != "A" || e.ForwardedBy != "" || string(e.Body) != `{"x":1}` {
		t.Fatalf("%d %+v, want A's own answer", resp.StatusCode, e)
	}
	resp, err = c.Get(a.public.URL + "/plain421")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest || string(got) != "not ours" {
		t.Fatalf("a 421 without a shard: %d %q, want it as written", resp.StatusCode, got)
	}
	if n := b.internalHits.Load(); n != 0 {
		t.Fatalf("%d requests forwarded to B, want none", n)
	}
}

// A handler that streams (the console's server-sent events) streams
// through Wrap: each event reaches the client when flushed, before the
// handler writes the next, and http.ResponseController reaches the
// connection through the wrapper.
func TestStreamingThroughWrap(t *testing.T) {
	f, err := New(Options{Self: "A", Secret: testSecret, Owners: &ownerTable{m: map[int][2]string{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := make(chan struct{})
	done := make(chan struct{})
	srv := httptest.NewServer(f.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		fl, ok := w.(http.Flusher)
		rc := http.NewResponseController(w)
		if !ok {
			http.Error(w, "not a Flusher", 500)
			return
		}
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			http.Error(w, "SetWriteDeadline: "+err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			_, _ = io.WriteString(w, "data: "+string(rune('0'+i))+"\n\n")
			if i%2 == 0 {
				fl.Flush()
			} else if err := rc.Flush(); err != nil {
				_, _ = io.WriteString(w, "data: rc.Flush: "+err.Error()+"\n\n")
			}
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})))
	defer srv.Close()
	c := testClient(t)
	c.Timeout = 10 * time.Second // an event held back fails the test, not hangs it
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		// The handler waits for next: this event came by its flush.
		line, err := br.ReadString('\n')
		if err != nil || line != "data: "+string(rune('0'+i))+"\n" {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		_, _ = br.ReadString('\n')
		next <- struct{}{}
	}
	<-done
}

// An owner's answer that streams streams on through the replica that
// forwarded it: each event reaches the client before the owner writes
// the next.
func TestOwnerStreamForwarded(t *testing.T) {
	a := newReplica(t, "A", testMax, false)
	b := newReplica(t, "B", testMax, false)
	b.own(2)
	a.owners.set(2, "B", b.internal.URL)
	c := testClient(t)
	c.Timeout = 10 * time.Second
	resp, err := c.Get(a.public.URL + "/v1/stream/2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != "data: "+string(rune('0'+i))+"\n" {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		_, _ = br.ReadString('\n')
		b.next <- struct{}{}
	}
}
