package batonapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestClientErrors(t *testing.T) {
	for _, c := range []struct {
		name, body string
		status     int
		want       string
		code       string
	}{
		{"Baton's refusal", `{"error":{"code":"refused","message":"only the thread's owner may hold it"}}`, 409, "only the thread's owner may hold it", "refused"},
		{"Meta's envelope", `{"error":{"message":"(#10) outside of allowed window","code":10}}`, 400, "(#10) outside of allowed window", ""},
		{"not JSON", `<html>`, 502, "unexpected answer from Baton: 502 Bad Gateway", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer tok" {
					t.Errorf("authorization %q", r.Header.Get("Authorization"))
				}
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			_, err := New(srv.URL+"/", "tok", srv.Client()).Activity(context.Background(), "1", "2", "typing", "anna", time.Minute)
			var be *Error
			if !errors.As(err, &be) || be.Message != c.want || be.Code != c.code || StatusOf(err) != c.status {
				t.Fatalf("err %#v", err)
			}
		})
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	if _, err := New(srv.URL, "tok", srv.Client()).Thread(context.Background(), "1", "2"); !errors.Is(err, ErrUnreachable) || StatusOf(err) != 0 {
		t.Fatalf("a closed Baton: %v", err)
	}
}

func TestThreadViewTimes(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	v := ThreadView{HoldUntil: &at}
	v.Pending = []Job{{"failback", at.Add(time.Hour)}, {"return", at.Add(time.Minute)}}
	if !v.ReturnAt().Equal(at.Add(time.Minute)) || !v.Hold().Equal(at) || !(ThreadView{}).ReturnAt().IsZero() || !(ThreadView{}).Hold().IsZero() {
		t.Fatalf("%+v", v)
	}
}

// The paged reads follow next_cursor to the end, stop at their cap, at
// enough, or on a cursor that does not move, and keep what they read
// before an error.
func TestPagedReads(t *testing.T) {
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.URL.RequestURI())
		switch q := r.URL.Query(); {
		case r.URL.Path == "/v1/threads" && q.Get("cursor") == "":
			io.WriteString(w, `{"threads":[{"page_id":"1","psid":"a","owner":"inbox"}],"next_cursor":"c1"}`)
		case r.URL.Path == "/v1/threads":
			io.WriteString(w, `{"threads":[{"page_id":"1","psid":"b","owner":"inbox"}],"next_cursor":""}`)
		case q.Get("cursor") == "":
			io.WriteString(w, `{"entries":[{"seq":3,"mid":"m3"},{"seq":4,"mid":"m4"}],"next_cursor":"t2"}`)
		case q.Get("cursor") == "t2" && r.URL.Path == "/v1/threads/1/loop/transcript":
			io.WriteString(w, `{"entries":[{"seq":2,"mid":"m2"}],"next_cursor":"t2"}`)
		case q.Get("cursor") == "t2" && r.URL.Path == "/v1/threads/1/down/transcript":
			w.WriteHeader(http.StatusBadGateway)
		case q.Get("limit") == "1":
			io.WriteString(w, `{"entries":[{"seq":2,"mid":"m2"}],"next_cursor":"t1"}`)
		default:
			io.WriteString(w, `{"entries":[{"seq":1,"mid":"m1"},{"seq":2,"mid":"m2"}],"next_cursor":""}`)
		}
	}))
	defer srv.Close()
	b := New(srv.URL, "tok", srv.Client())
	ctx := context.Background()
	ts, err := b.OwnedThreads(ctx, "1", 1, 10)
	if err != nil || len(ts) != 2 || ts[0].PSID != "a" || ts[1].PSID != "b" || calls[0] != "/v1/threads?limit=1&owner=me&page=1" {
		t.Fatalf("threads %+v %v %v", ts, err, calls)
	}
	never := func([]TranscriptEntry) bool { return false }
	for _, c := range []struct {
		name, psid string
		max        int
		enough     func([]TranscriptEntry) bool
		want       string
		wantErr    bool
	}{
		{"to the start", "x", 10, never, "m1 m2 m3 m4", false},
		{"the cap", "x", 3, never, "m2 m3 m4", false},
		{"enough", "x", 10, func(es []TranscriptEntry) bool { return es[0].Mid == "m3" }, "m3 m4", false},
		{"a cursor that does not move", "loop", 10, never, "m2 m3 m4", false},
		{"an error", "down", 10, never, "m3 m4", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			es, err := b.TranscriptBack(ctx, "1", c.psid, 2, c.max, c.enough)
			var got []string
			for _, e := range es {
				got = append(got, e.Mid)
			}
			if s := strings.Join(got, " "); s != c.want || (err != nil) != c.wantErr {
				t.Fatalf("%q %v, want %q", s, err, c.want)
			}
		})
	}
}
