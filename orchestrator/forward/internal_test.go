package forward

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The internal listener serves only what a replica of the cluster signed
// within MaxSkew, for the body, request URI, client and sender signed;
// the rest is refused before the handler, counted, and logged sampled.
func TestInternalRefuses(t *testing.T) {
	b := newReplica(t, "B", 8<<10, false)
	b.own(1)
	fixed := time.Now()
	b.f.sampled = newSampler(time.Second, func() time.Time { return fixed }) // one line per reason here
	signer := func(secret string, skew time.Duration) *Forwarder {
		f, err := New(Options{Self: "A", Secret: []byte(secret), Owners: &ownerTable{m: map[int][2]string{}}, MaxBody: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		f.now = func() time.Time { return time.Now().Add(skew) }
		return f
	}
	good := signer(string(testSecret), 0)
	const path = "/v1/threads/1/pass?x=1"
	body := []byte(`{"recipient":{"id":"1234"}}`)
	// signed is a request A forwards for client 192.0.2.1:1234, signed by
	// f, then changed by edit.
	signed := func(f *Forwarder, body []byte, edit func(*http.Request) *http.Request) *http.Request {
		in := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		in.RemoteAddr = "192.0.2.1:1234"
		out, err := f.request(in, b.internal.URL, body)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			out = edit(out)
		}
		return out
	}
	withBody := func(other []byte) func(*http.Request) *http.Request {
		return func(r *http.Request) *http.Request {
			n, _ := http.NewRequest(r.Method, r.URL.String(), bytes.NewReader(other))
			n.Header = r.Header.Clone()
			return n
		}
	}
	setHeader := func(k, v string) func(*http.Request) *http.Request {
		return func(r *http.Request) *http.Request { r.Header.Set(k, v); return r }
	}
	c := testClient(t)
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		reason string
	}{
		{"signed", signed(good, body, nil), http.StatusCreated, ""},
		{"signed 25 s ago", signed(signer(string(testSecret), -25*time.Second), body, nil), http.StatusCreated, ""},
		{"unsigned", signed(good, body, func(r *http.Request) *http.Request { r.Header.Del(HeaderSignature); return r }), 401, "unsigned"},
		{"another secret", signed(signer("another-secret-0123456789", 0), body, nil), 401, "bad_signature"},
		{"signed 31 s ago", signed(signer(string(testSecret), -31*time.Second), body, nil), 401, "stale"},
		{"signed 31 s ahead", signed(signer(string(testSecret), 31*time.Second), body, nil), 401, "stale"},
		{"another body", signed(good, body, withBody([]byte(`{"recipient":{"id":"9999"}}`))), 401, "body_mismatch"},
		{"another body and its hash", signed(good, body, func(r *http.Request) *http.Request {
			r = withBody([]byte(`{}`))(r)
			r.Header.Set(HeaderBodySHA256, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
			return r
		}), 401, "bad_signature"},
		{"another path", signed(good, body, func(r *http.Request) *http.Request {
			r.URL.Path = "/v1/threads/1/take"
			return r
		}), 401, "bad_signature"},
		{"another query", signed(good, body, func(r *http.Request) *http.Request { r.URL.RawQuery = "x=2"; return r }), 401, "bad_signature"},
		{"another method", signed(good, body, func(r *http.Request) *http.Request { r.Method = http.MethodPut; return r }), 401, "bad_signature"},
		{"another client", signed(good, body, setHeader(HeaderClient, "203.0.113.9:1")), 401, "bad_signature"},
		{"another sender", signed(good, body, setHeader(HeaderForwardedBy, "C")), 401, "bad_signature"},
		{"a timestamp not a number", signed(good, body, setHeader(HeaderTimestamp, "soon")), 401, "malformed"},
		{"a signature not hex", signed(good, body, setHeader(HeaderSignature, "zz")), 401, "malformed"},
		{"a body over MaxBody", signed(good, bytes.Repeat([]byte("x"), 8<<10+1), nil), 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			served := b.served.Load()
			resp, err := c.Do(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, got, tc.status)
			}
			if tc.reason == "" {
				var e echo
				if err := json.Unmarshal(got, &e); err != nil || e.Remote != "192.0.2.1:1234" || e.ForwardedBy != "A" || !bytes.Equal(e.Body, body) {
					t.Fatalf("served %+v %v: want the client's address, A, the body", e, err)
				}
				return
			}
			if b.served.Load() != served {
				t.Fatal("the handler served a refused request")
			}
			if n := testutilCount(b, tc.reason); n < 1 {
				t.Fatalf("reason %s not counted", tc.reason)
			}
		})
	}
	good.Close()
	// A flood of refusals is one log line a reason a second.
	for range 5 {
		resp, err := c.Post(b.internal.URL+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	refused := b.logs.FilterMessage("internal listener refused a request")
	unsigned := 0
	for _, e := range refused.All() {
		if e.ContextMap()["reason"] == "unsigned" {
			unsigned++
		}
	}
	if unsigned != 1 || testutilCount(b, "unsigned") != 6 {
		t.Fatalf("%d log lines of 6 unsigned requests (%v counted), want 1", unsigned, testutilCount(b, "unsigned"))
	}
}

func testutilCount(rp *replica, reason string) float64 {
	return testutil.ToFloat64(rp.f.refused.WithLabelValues(reason))
}
