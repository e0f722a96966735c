package ingress

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
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

// A body's memory grows with the bytes that arrived: a sender promising
// a megabyte and sending ten bytes costs a small buffer, not the
// megabyte; a body that does arrive is read whole, however it comes.
func TestReadBodyGrowsWithArrival(t *testing.T) {
	const promised = 1 << 20
	r := httptest.NewRequest(http.MethodPost, "/", io.LimitReader(strings.NewReader(strings.Repeat("x", promised)), 10))
	r.ContentLength = promised
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := readBody(httptest.NewRecorder(), r, promised); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v, want a short body", err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 2*firstRead {
		t.Fatalf("10 bytes of a promised %d cost %d bytes", promised, got)
	}

	// One byte at a time, sized and not: all of it.
	body := strings.Repeat("0123456789", 10_000)
	for _, length := range []int64{int64(len(body)), -1} {
		r := httptest.NewRequest(http.MethodPost, "/", iotest.OneByteReader(strings.NewReader(body)))
		r.ContentLength = length
		got, err := readBody(httptest.NewRecorder(), r, 1<<20)
		if err != nil || string(got) != body {
			t.Fatalf("length %d: read %d bytes, %v", length, len(got), err)
		}
	}
	// A small sized body takes one allocation of its size.
	small := []byte(strings.Repeat("x", 1200))
	rd := bytes.NewReader(small)
	allocs := testing.AllocsPerRun(100, func() {
		rd.Reset(small)
		r := &http.Request{ContentLength: int64(len(small)), Body: io.NopCloser(rd)}
		if got, err := readBody(nil, r, 1<<20); err != nil || cap(got) != len(small) {
			t.Fatalf("cap %d, %v", cap(got), err)
		}
	})
	if allocs > 3 {
		t.Fatalf("%v allocations for a small body", allocs)
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
