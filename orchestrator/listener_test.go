//go:build linux

package orchestrator_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/messenger"
)

// raiseTestOpenFiles lifts this process's open-files limit to its hard
// limit, and skips when that cannot hold need descriptors: the clients
// and Baton's side of every connection live in this one process.
func raiseTestOpenFiles(t *testing.T, need uint64) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	if lim.Cur < need {
		t.Skipf("open-files limit %d, the test needs %d", lim.Cur, need)
	}
}

// sampleHeap samples HeapInuse every 50 ms until the function it returns
// is called, which answers the peak. The heap is Baton's too: it runs in
// this process.
func sampleHeap() (peak func() uint64) {
	var top uint64
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			top = max(top, ms.HeapInuse)
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(stopSampling); <-sampled; return top }
}

// Strangers holding connections open, idle or dribbling bodies they
// promised to be 1 MB, neither starve Meta's webhooks nor grow Baton's
// memory beyond the bytes that arrived; the dribblers are cut off by the
// read timeout, or refused at once (503) when their promises exceed the
// body budget (webhooks.max_inflight_bytes, 64 MiB: 48 of them fit).
func TestPublicListenerHoldsUp(t *testing.T) {
	const (
		idleConns  = 1000
		dribblers  = 300
		webhooks   = 300
		senders    = 4
		heapLimit  = 100 << 20
		p99Limit   = time.Second
		giveUpTime = 18 * time.Second // the test's own bound on a dribbler
	)
	raiseTestOpenFiles(t, 2*(idleConns+dribblers+senders)+200)
	h := newHarness(t)
	addr := strings.TrimPrefix(h.baton, "http://")

	heapPeak := sampleHeap()

	// Idle keep-alive connections: one request each, then nothing.
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range idleConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: baton\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
	}

	// Dribblers: headers promising 1 MB, then a byte now and then.
	type ending struct {
		status int
		err    error
		after  time.Duration
	}
	endings := make(chan ending, dribblers)
	var slow []net.Conn
	start := time.Now()
	for range dribblers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		slow = append(slow, c)
		fmt.Fprintf(c, "POST /webhooks/support-bot HTTP/1.1\r\nHost: baton\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n%s: sha256=%s\r\n\r\n{\"object\":",
			messenger.HeaderSignature256, strings.Repeat("0", 64))
		_ = c.SetReadDeadline(start.Add(giveUpTime))
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			e := ending{err: err, after: time.Since(start)}
			if err == nil {
				e.status = resp.StatusCode
				resp.Body.Close()
			}
			endings <- e
		}()
	}
	allEnded := make(chan struct{})
	dribbled := make(chan struct{})
	go func() {
		defer close(dribbled)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-allEnded:
				return
			case <-tick.C:
			}
			for _, c := range slow {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Write([]byte(" ")) // a cut-off dribbler's write fails: it stops mattering
			}
		}
	}()

	// Meta's webhooks meanwhile, signed, a few senders at once.
	secret := []byte(env["SUPPORT_SECRET"])
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	defer client.CloseIdleConnections()
	latencies := make([]time.Duration, webhooks)
	failures := make(chan string, webhooks)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := s; i < webhooks; i += senders {
				body := messageBody(pageID, fmt.Sprintf("m_hold_%d", i), "hello")
				req, _ := http.NewRequest("POST", h.baton+"/webhooks/support-bot", bytes.NewReader(body))
				req.Header.Set(messenger.HeaderSignature256, messenger.Sign(secret, body))
				t0 := time.Now()
				resp, err := client.Do(req)
				latencies[i] = time.Since(t0)
				if err != nil {
					failures <- err.Error()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures <- resp.Status
				}
			}
		})
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("legitimate webhook: %s", f)
	}
	slices.Sort(latencies)
	p99 := latencies[(len(latencies)*99+99)/100-1]

	var lastCut time.Duration
	held, timedOut, busy, closed, answered := 0, 0, 0, 0, map[int]int{}
	for range dribblers {
		e := <-endings
		lastCut = max(lastCut, e.after)
		switch {
		case errors.Is(e.err, os.ErrDeadlineExceeded):
			held++
		case e.err != nil:
			closed++
		case e.status == http.StatusRequestTimeout:
			timedOut++
		case e.status == http.StatusServiceUnavailable:
			busy++
		default:
			answered[e.status]++
		}
	}
	if held > 0 || len(answered) > 0 {
		t.Errorf("of %d dribblers, %d still connected after %v and %v answered otherwise than 408, 503 or a closed connection", dribblers, held, giveUpTime, answered)
	}
	close(allEnded)
	<-dribbled
	heap := heapPeak()
	t.Logf("%d webhooks beside %d idle connections and %d dribblers: p99 %v, max %v; peak HeapInuse %.1f MiB; dribblers cut off by %v (%d answered 408, %d refused 503 for the body budget, %d closed)",
		webhooks, idleConns, dribblers, p99.Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond), float64(heap)/(1<<20),
		lastCut.Round(time.Millisecond), timedOut, busy, closed)
	if p99 >= p99Limit {
		t.Errorf("p99 of legitimate webhooks %v, want under %v", p99, p99Limit)
	}
	if heap >= heapLimit {
		t.Errorf("peak HeapInuse %d MiB, want under %d MiB", heap>>20, heapLimit>>20)
	}
}

// Clients that each send most of a body of max_body and then stall hold
// no more of Baton's heap than webhooks.max_inflight_bytes: those past
// the budget are answered 503 with Retry-After at once (counted, and in
// recent errors), and a legitimate webhook meanwhile gets its 200. The
// body reader alone grows with the bytes that arrived, which these
// clients do send: without the budget they would hold 80 MiB.
func TestPublicListenerBoundsBodiesInFlight(t *testing.T) {
	const (
		clients = 80
		maxBody = 1 << 20 // the default webhooks.max_body
		budget  = 8 << 20
		// Large shares hold at most three quarters of the budget.
		admitted = budget * 3 / 4 / maxBody
		slack    = 16 << 20 // the harness, and the garbage of a body's growth
	)
	raiseTestOpenFiles(t, 2*clients+200)
	h := newHarness(t, func(yaml *string) { *yaml += fmt.Sprintf("webhooks: {max_inflight_bytes: %d}\n", budget) })
	addr := strings.TrimPrefix(h.baton, "http://")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	heapPeak := sampleHeap()

	payload := bytes.Repeat([]byte(" "), maxBody-1) // the last byte never comes
	type answer struct {
		status     int
		retryAfter string
	}
	answers := make(chan answer, clients)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		go func() {
			fmt.Fprintf(c, "POST /webhooks/support-bot HTTP/1.1\r\nHost: baton\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s: sha256=%s\r\n\r\n",
				maxBody, messenger.HeaderSignature256, strings.Repeat("0", 64))
			_, _ = c.Write(payload) // fails once Baton refused it and closed
		}()
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return // closed at the end of the test: an admitted one
			}
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
	}
	// The refused are answered within the budget's wait (1 s); a bound
	// of its own, so that without a budget the test fails, not hangs.
	refused := 0
	deadline := time.After(10 * time.Second)
wait:
	for refused < clients-admitted {
		select {
		case a := <-answers:
			if a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
				t.Errorf("a client past the budget: %d, Retry-After %q; want 503 with Retry-After", a.status, a.retryAfter)
			}
			refused++
		case <-deadline:
			break wait
		}
	}

	// Meta's webhook meanwhile: a few KB, in the quarter kept for small
	// bodies.
	body := messageBody(pageID, "m_budget", "hello past the stallers")
	req, _ := http.NewRequest("POST", h.baton+"/webhooks/support-bot", bytes.NewReader(body))
	req.Header.Set(messenger.HeaderSignature256, messenger.Sign([]byte(env["SUPPORT_SECRET"]), body))
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || time.Since(t0) > time.Second {
		t.Errorf("legitimate webhook beside the stallers: %d after %v, want 200 at once", resp.StatusCode, time.Since(t0))
	}
	if text(h.support.next()) != "hello past the stallers" {
		t.Error("the legitimate webhook was not delivered")
	}
	peak := heapPeak()
	t.Logf("%d clients each sending %d of %d bytes: %d refused; heap grew by %.1f MiB at most (budget %d MiB)",
		clients, len(payload), maxBody, refused, (float64(peak)-float64(base))/(1<<20), budget>>20)
	if refused != clients-admitted {
		t.Errorf("%d of %d clients refused, want %d (all but the %d the budget holds)", refused, clients, clients-admitted, admitted)
	}
	if peak > base+budget+slack {
		t.Errorf("heap grew by %d MiB, want under the budget (%d MiB) and %d MiB of slack", (peak-base)>>20, budget>>20, slack>>20)
	}
	if n := h.metric(`baton_webhook_body_budget_refusals_total{app="support-bot"}`); int(n) != refused {
		t.Errorf("baton_webhook_body_budget_refusals_total %v, want %d", n, refused)
	}
	var errs struct{ Errors []struct{ Message string } }
	h.do("GET", h.admin+"/admin/errors", adminToken, nil, &errs)
	found := false
	for _, e := range errs.Errors {
		found = found || strings.Contains(e.Message, "max_inflight_bytes")
	}
	if !found {
		t.Errorf("no refusal for the budget in recent errors: %+v", errs.Errors)
	}
}
