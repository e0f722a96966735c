package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := Summarise(d)
	if l.N != 1000 || l.P50 != 501*time.Millisecond || l.P99 != 991*time.Millisecond || l.Max != time.Second {
		t.Fatalf("%+v", l)
	}
	if Summarise(nil) != (Latencies{}) {
		t.Fatal("empty sample")
	}
}

func TestRunAgainstBaseline(t *testing.T) {
	secret := []byte("s")
	srv := httptest.NewServer(Baseline(secret, 1<<20))
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL, Secret: secret, Pages: []string{"1"}, AppID: "9",
		Threads: 8, Connections: 4, Duration: 200 * time.Millisecond, Handovers: 0.1, TextBytes: 100, RunID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked == 0 || res.Failed != 0 || len(res.AckedMids) == 0 || res.AckLatency.N != res.Acked {
		t.Fatalf("%+v", res)
	}
	// A wrong secret is refused by the baseline, like Baton.
	res, _ = Run(context.Background(), Options{URL: srv.URL, Secret: []byte("wrong"), Pages: []string{"1"}, Threads: 1, Connections: 1, Duration: 50 * time.Millisecond})
	if res.Acked != 0 || res.Failed == 0 {
		t.Fatalf("wrong secret: %+v", res)
	}
}

func TestRecorderCountsDuplicatesAndOrder(t *testing.T) {
	rc := NewRecorder()
	send := func(id, psid, mid string, seq int) {
		body := fmt.Sprintf(`{"id":%q,"psid":%q,"kind":"message","event":{"message":{"mid":%q,"text":"seq=%d sent=%d"}}}`, id, psid, mid, seq, time.Now().UnixNano())
		rc.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
	}
	send("d1", "p", "m1", 1)
	send("d2", "p", "m2", 3)
	send("d3", "p", "m3", 2) // out of order
	send("d1", "p", "m1", 1) // repeat, same id
	send("d9", "p", "m2", 3) // repeat under another id
	if rc.OutOfOrder != 1 || rc.Duplicates != 1 || rc.Mismatched != 1 {
		t.Fatalf("order %d dup %d mismatched %d", rc.OutOfOrder, rc.Duplicates, rc.Mismatched)
	}
	if n := rc.Missing(map[string]bool{"m1": true, "m4": true}); n != 1 {
		t.Fatalf("missing %d", n)
	}
}

// BenchmarkRecorder: what the recording bot costs per delivery, on the
// machine it measures (without HTTP).
func BenchmarkRecorder(b *testing.B) {
	rc := NewRecorder()
	text := strings.Repeat("Hi, I need help with my order ", 27)
	var i int
	for b.Loop() {
		i++
		body := fmt.Sprintf(`{"id":"dlv_%d","app":"bench-bot","page_id":"100200300400500","psid":"7000000000000001","channel":"messaging","kind":"message","attempt":1,"thread":{"state":"primary","owner":"bench-bot","owner_app_id":"512345678901234"},"event":{"sender":{"id":"7000000000000001"},"recipient":{"id":"100200300400500"},"timestamp":1795557600000,"message":{"mid":"m_%d","text":"seq=%d sent=%d %s"}}}`, i, i, i, time.Now().UnixNano(), text)
		rc.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
	}
	if rc.OutOfOrder != 0 || len(rc.first) != i {
		b.Fatalf("recorded %d of %d, %d out of order", len(rc.first), i, rc.OutOfOrder)
	}
}
