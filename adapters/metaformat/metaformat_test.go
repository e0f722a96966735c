package metaformat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
)

func TestDeliversMetaShapeSignedBothWays(t *testing.T) {
	secret := "bot-secret"
	var got *messenger.Envelope
	var raw []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ = io.ReadAll(r.Body)
		if err := messenger.Verify(r.Header, raw, []byte(secret), messenger.VerifyOptions{}); err != nil {
			t.Errorf("sha256: %v", err)
		}
		h := http.Header{messenger.HeaderSignatureSHA1: r.Header[messenger.HeaderSignatureSHA1]}
		if err := messenger.Verify(h, raw, []byte(secret), messenger.VerifyOptions{AllowSHA1: true}); err != nil {
			t.Errorf("sha1: %v", err)
		}
		var err error
		if got, err = messenger.ParseEnvelope(raw); err != nil {
			t.Errorf("parse: %v", err)
		}
	}))
	defer srv.Close()
	a, err := New(adapters.Settings{URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	// The event as Meta sent it, with Meta's escapes.
	event := json.RawMessage(`{"sender":{"id":"7"},"recipient":{"id":"1"},"timestamp":1,"postback":{"title":"Caf\u00e9 https:\/\/x","mid":"m"}}`)
	for _, ch := range []string{"messaging", "standby"} {
		if _, err := a.Deliver(context.Background(), &adapters.Delivery{ID: "dlv_1", PageID: "1", PSID: "7", Channel: ch, Event: event}); err != nil {
			t.Fatal(err)
		}
		var n int
		got.Each(func(en *messenger.Entry, c messenger.Channel, ev *messenger.Event) {
			n++
			if string(c) != ch || en.ID != "1" || ev.Postback.Title != "Café https://x" {
				t.Errorf("%s: got %s %+v", ch, c, ev.Postback)
			}
		})
		if n != 1 || !strings.Contains(string(raw), `Caf\u00e9 https:\/\/x`) {
			t.Fatalf("%d events; body %s", n, raw)
		}
	}
}

func TestFailuresAreJudgedLikeAnyAdapter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(400) }))
	defer srv.Close()
	a, _ := New(adapters.Settings{URL: srv.URL, Secret: "s"})
	_, err := a.Deliver(context.Background(), &adapters.Delivery{PageID: "1", Event: json.RawMessage(`{}`)})
	if err == nil || adapters.Retryable(err) {
		t.Fatalf("400: %v", err)
	}
	if _, err := New(adapters.Settings{URL: srv.URL}); err == nil {
		t.Fatal("no secret accepted")
	}
}

// A redirect is a final failure naming the Location, which is never
// requested.
func TestRedirectIsNotFollowed(t *testing.T) {
	var hits atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer elsewhere.Close()
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	}))
	defer bot.Close()
	a, _ := New(adapters.Settings{URL: bot.URL, Secret: "s", Client: &http.Client{}})
	_, err := a.Deliver(context.Background(), &adapters.Delivery{PageID: "1", Event: json.RawMessage(`{}`)})
	var ae *adapters.Error
	if !errors.As(err, &ae) || ae.Location != elsewhere.URL || adapters.Retryable(err) || !strings.Contains(err.Error(), elsewhere.URL) {
		t.Fatalf("307: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the Location was requested")
	}
}

// A retried dead letter says so in headers, its body still Meta's shape
// byte for byte; other deliveries carry none of them.
func TestRetriedDeadLetterHeaders(t *testing.T) {
	var got http.Header
	var raw []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		raw, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	a, err := New(adapters.Settings{URL: srv.URL, Secret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a.(*Adapter).now = func() time.Time { return now }
	event := json.RawMessage(`{"sender":{"id":"7"},"recipient":{"id":"1"},"timestamp":1,"message":{"mid":"m","text":"hi"}}`)
	plain := &adapters.Delivery{ID: "dlv_1", PageID: "1", PSID: "7", Channel: "messaging", Event: event}
	if _, err := a.Deliver(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{HeaderRetried, HeaderDeadAt, HeaderLaterDelivered} {
		if v := got.Get(h); v != "" {
			t.Errorf("%s: %q on a first delivery", h, v)
		}
	}
	plainBody := raw
	retried := *plain
	retried.Retried = &adapters.Retried{DeadAt: time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC), LaterDelivered: true}
	if _, err := a.Deliver(context.Background(), &retried); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{HeaderRetried: "1", HeaderDeadAt: "2026-11-24T09:30:00Z", HeaderLaterDelivered: "true"}
	for h, v := range want {
		if got.Get(h) != v {
			t.Errorf("%s: %q, want %q", h, got.Get(h), v)
		}
	}
	if string(raw) != string(plainBody) {
		t.Errorf("body of a retried delivery:\n%s\nwant Meta's, as for any delivery:\n%s", raw, plainBody)
	}
}
