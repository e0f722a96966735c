package batonapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
