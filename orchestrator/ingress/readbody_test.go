package ingress

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadBody(t *testing.T) {
	body := strings.Repeat("x", 1200)
	for _, c := range []struct {
		name    string
		length  int64 // -1: unknown, as a chunked request
		max     int64
		want    string
		tooBig  bool
		wantErr bool
	}{
		{"sized", 1200, 4096, body, false, false},
		{"unsized", -1, 4096, body, false, false},
		{"sized over the limit", 1200, 1000, "", true, true},
		{"unsized over the limit", -1, 1000, "", true, true},
		{"empty", 0, 4096, "", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := body
			if c.length == 0 {
				src = ""
			}
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(src))
			r.ContentLength = c.length
			got, err := readBody(httptest.NewRecorder(), r, c.max)
			var mbe *http.MaxBytesError
			if (err != nil) != c.wantErr || errors.As(err, &mbe) != c.tooBig {
				t.Fatalf("err %v, want error %v (too big %v)", err, c.wantErr, c.tooBig)
			}
			if err == nil && string(got) != c.want {
				t.Fatalf("read %d bytes, want %d", len(got), len(c.want))
			}
		})
	}
	// A body shorter than its Content-Length is an error, not a short read.
	r := httptest.NewRequest(http.MethodPost, "/", io.LimitReader(bytes.NewReader([]byte(body)), 100))
	r.ContentLength = 1200
	if _, err := readBody(httptest.NewRecorder(), r, 4096); err == nil {
		t.Fatal("a truncated body was accepted")
	}
}

func BenchmarkReadBody(b *testing.B) {
	body := []byte(strings.Repeat("x", 1200))
	for _, c := range []struct {
		name string
		read func(http.ResponseWriter, *http.Request) ([]byte, error)
	}{
		{"ReadAll", func(w http.ResponseWriter, r *http.Request) ([]byte, error) {
			return io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		}},
		{"sized", func(w http.ResponseWriter, r *http.Request) ([]byte, error) { return readBody(w, r, 1<<20) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			r := &http.Request{ContentLength: int64(len(body))}
			rd := bytes.NewReader(body)
			for b.Loop() {
				rd.Reset(body)
				r.Body = io.NopCloser(rd)
				if _, err := c.read(nil, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
