package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
)

func TestDeliverSignsAndReadsActions(t *testing.T) {
	key, _ := Key("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	var got adapters.Delivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify(key, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("verify: %v", err)
		}
		if ct, ua := r.Header.Get("Content-Type"), r.Header.Get("User-Agent"); ct != "application/json" || ua != "Baton" {
			t.Errorf("Content-Type %q, User-Agent %q", ct, ua)
		}
		_ = json.Unmarshal(body, &got)
		io.WriteString(w, `{"actions":[{"type":"pass","to":"page-inbox","metadata":"human please"}]}`)
	}))
	defer srv.Close()
	a, err := New(adapters.Settings{URL: srv.URL, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d := &adapters.Delivery{ID: "dlv_1", App: "bot", PageID: "1", PSID: "2", Channel: "messaging", Event: json.RawMessage(`{"message":{"text":"hi"}}`)}
	res, err := a.Deliver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != 1 || res.Actions[0].Type != "pass" || res.Actions[0].To != "page-inbox" {
		t.Fatalf("actions %+v", res.Actions)
	}
	if got.ID != "dlv_1" || string(got.Event) != `{"message":{"text":"hi"}}` {
		t.Fatalf("bot got %+v", got)
	}
}

// The example from the Standard Webhooks specification's test vectors.
func TestSignMatchesSpecVector(t *testing.T) {
	key, _ := Key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestDeliverFailures(t *testing.T) {
	for _, tt := range []struct {
		status int
		retry  bool
	}{{500, true}, {429, true}, {400, false}, {410, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) }))
		a, _ := New(adapters.Settings{URL: srv.URL, Secret: "s"})
		_, err := a.Deliver(context.Background(), &adapters.Delivery{ID: "x"})
		var ae *adapters.Error
		if !errors.As(err, &ae) || ae.Retry != tt.retry || ae.Status != tt.status {
			t.Errorf("%d: %v", tt.status, err)
		}
		srv.Close()
	}
	a, _ := New(adapters.Settings{URL: "http://127.0.0.1:1", Secret: "s"})
	if _, err := a.Deliver(context.Background(), &adapters.Delivery{ID: "x"}); err == nil || !adapters.Retryable(err) {
		t.Fatalf("bot down: %v", err)
	}
}

func TestReceive(t *testing.T) {
	key := []byte("bot-secret")
	body := []byte(`{"id":"dlv_1","app":"bot","page_id":"100","psid":"7","channel":"messaging","kind":"message","attempt":1,"thread":{"owner":"bot"},"event":{"message":{"mid":"m_1"}}}`)
	signed := func(body []byte, ts int64) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("webhook-id", "dlv_1")
		r.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		r.Header.Set("webhook-signature", Sign(key, "dlv_1", ts, body))
		return r
	}
	now := time.Now().Unix()
	d, err := Receive(key, signed(body, now), 1<<10, time.Minute)
	if err != nil || d.ID != "dlv_1" || d.Thread.Owner != "bot" || string(d.Event) != `{"message":{"mid":"m_1"}}` {
		t.Fatalf("Receive = %+v, %v", d, err)
	}
	tampered := signed(body, now)
	tampered.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte("m_1"), []byte("m_2"), 1)))
	for _, tc := range []struct {
		name   string
		r      *http.Request
		status int
	}{
		{"tampered", tampered, http.StatusUnauthorized},
		{"stale", signed(body, now-3600), http.StatusUnauthorized},
		{"oversized", signed(bytes.Repeat([]byte(" "), 2<<10), now), http.StatusRequestEntityTooLarge},
		{"not JSON", signed([]byte(`{"id":`), now), http.StatusBadRequest},
	} {
		_, err := Receive(key, tc.r, 1<<10, time.Minute)
		var re *ReceiveError
		if !errors.As(err, &re) || re.Status != tc.status {
			t.Errorf("%s: %v, want status %d", tc.name, err, tc.status)
		}
	}
}

// A realistic delivery: a 1 KB message event as Meta escapes it.
func benchDelivery() *adapters.Delivery {
	text := strings.Repeat("Bonjour, où est ma commande ? ", 27)
	ev, _ := json.Marshal(map[string]any{"sender": map[string]string{"id": "7123456789012345"}, "recipient": map[string]string{"id": "100200300400500"},
		"timestamp": 1795557600000, "message": map[string]string{"mid": "m_AbCdEfGhIjKlMnOp", "text": text}})
	return &adapters.Delivery{ID: "dlv_123456", App: "support-bot", PageID: "100200300400500", PSID: "7123456789012345", Channel: "messaging",
		Kind: "message", Attempt: 1, Thread: adapters.Thread{State: "primary", Owner: "support-bot", OwnerAppID: "512345678901234"}, Event: ev}
}

// BenchmarkEncodeDelivery compares the splice with the json.Marshal it
// replaced, in the same run.
func BenchmarkEncodeDelivery(b *testing.B) {
	d := benchDelivery()
	for _, c := range []struct {
		name string
		fn   func(*adapters.Delivery) ([]byte, error)
	}{
		{"marshal", func(d *adapters.Delivery) ([]byte, error) { return json.Marshal(d) }},
		{"splice", encode},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(d.Event)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fn(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestEncodeKeepsTheEventsBytes(t *testing.T) {
	for _, raw := range []string{
		`{"message":{"text":"a < b & c > d","mid":"m_1"}}`, // json.Marshal would write \u003c
		"{ \"message\" : {\"text\":\"spaced\"} }",
		`{"message":{"text":"caf\u00e9 \/ slash"}}`,
		``, // no event: null, as before
	} {
		d := benchDelivery()
		d.Event = json.RawMessage(raw)
		if raw == "" {
			d.Event = nil
		}
		got, err := encode(d)
		if err != nil {
			t.Fatal(err)
		}
		var back adapters.Delivery
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", raw, err, got)
		}
		want := raw
		if raw == "" {
			want = "null"
		}
		if string(back.Event) != want || back.ID != d.ID || back.Thread != d.Thread || back.Attempt != d.Attempt {
			t.Errorf("round trip of %q:\n%s", raw, got)
		}
	}
}

// A bot answering 302 fails the delivery for good, naming the Location,
// and the Location is never requested: with the shared client, with a
// plain client, and with the adapter's own.
func TestRedirectIsAFinalFailure(t *testing.T) {
	var hits atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer elsewhere.Close()
	target := elsewhere.URL + "/latest/meta-data/"
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}))
	defer bot.Close()
	for name, client := range map[string]*http.Client{"shared": adapters.NewClient(adapters.ClientOptions{}), "plain": {}, "own": nil} {
		a, err := New(adapters.Settings{URL: bot.URL, Secret: "s", Timeout: time.Second, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Deliver(context.Background(), &adapters.Delivery{ID: "x"})
		var ae *adapters.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusFound || ae.Location != target || adapters.Retryable(err) || !strings.Contains(err.Error(), target) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the Location was requested %d times", n)
	}
}

// A URL that reaches a metadata address at run time (here a literal; a
// DNS name is judged the same way, after resolution) is refused at
// connect time and not retried.
func TestMetadataAddressRefusedAtConnect(t *testing.T) {
	a, _ := New(adapters.Settings{URL: "http://169.254.169.254/latest/meta-data/", Secret: "s", Timeout: 2 * time.Second})
	_, err := a.Deliver(context.Background(), &adapters.Delivery{ID: "x"})
	if !errors.Is(err, adapters.ErrRefusedAddress) || adapters.Retryable(err) {
		t.Fatalf("got %v", err)
	}
}

// A retried dead letter carries "retried" in the envelope, before the
// spliced event; every other delivery's envelope is unchanged.
func TestEncodeRetried(t *testing.T) {
	d := benchDelivery()
	plain, err := encode(d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain), `"retried"`) {
		t.Errorf("a first delivery says retried: %s", plain)
	}
	d.Retried = &adapters.Retried{DeadAt: time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC), LaterDelivered: true}
	got, err := encode(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `"thread":{"state":"primary","owner":"support-bot","owner_app_id":"512345678901234"},"retried":{"dead_at":"2026-11-24T09:30:00Z","later_delivered":true},"event":` + string(d.Event) + "}"
	if !strings.HasSuffix(string(got), want) {
		t.Errorf("envelope:\n%s\nwant it to end with\n%s", got, want)
	}
	var back adapters.Delivery
	if err := json.Unmarshal(got, &back); err != nil || back.Retried == nil || !back.Retried.LaterDelivered || !back.Retried.DeadAt.Equal(d.Retried.DeadAt) {
		t.Errorf("decoded %+v: %v", back.Retried, err)
	}
}

// roundTrip is a transport that reads the request and answers 200 with
// no body, as a bot with nothing to say does.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// BenchmarkSign: the Standard Webhooks signature of one 1 KB delivery.
func BenchmarkSign(b *testing.B) {
	key, _ := Key("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	body, err := encode(benchDelivery())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(key, "dlv_123456", 1795557600, body)
	}
}

// BenchmarkDeliver: what the adapter does for one delivery up to the
// connection (the envelope, the signature, the request, the answer read
// and judged), against a transport that answers at once; single and a
// batch of 20 (per delivery), as the bench's bot received them.
func BenchmarkDeliver(b *testing.B) {
	ok := roundTrip(func(r *http.Request) (*http.Response, error) {
		_, _ = io.Copy(io.Discard, r.Body)
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	a, err := New(adapters.Settings{URL: "http://bot.example/hook", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		Timeout: 10 * time.Second, Client: &http.Client{Transport: ok}})
	if err != nil {
		b.Fatal(err)
	}
	d := benchDelivery()
	b.Run("single", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Deliver(context.Background(), d); err != nil {
				b.Fatal(err)
			}
		}
	})
	batch := make([]*adapters.Delivery, 20)
	for i := range batch {
		cp := *d
		cp.ID = "dlv_" + strconv.Itoa(123456+i)
		batch[i] = &cp
	}
	b.Run("batch20", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, o := range a.(*Adapter).DeliverBatch(context.Background(), batch) {
				if o.Err != nil {
					b.Fatal(o.Err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/delivery")
	})
}

// An adapter signs with pooled HMACs what Sign signs: the specification's
// example, three times over (each after a reset), and another id apart.
func TestPooledSignIsSign(t *testing.T) {
	const secret, id, ts, body, want = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
		`{"test": 2432232314}`, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	ad, err := New(adapters.Settings{URL: "http://bot.example/", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	a := ad.(*Adapter)
	for i := range 3 {
		if got := a.sign(id, ts, []byte(body)); got != want {
			t.Fatalf("sign, time %d: %s, want %s", i+1, got, want)
		}
		if got, other := a.sign("dlv_1", ts, []byte(body)), Sign(a.key, "dlv_1", ts, []byte(body)); got != other {
			t.Fatalf("sign %s, Sign %s", got, other)
		}
	}
}
