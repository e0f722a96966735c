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

// Strangers holding connections open, idle or dribbling bodies they
// promised to be 1 MB, neither starve Meta's webhooks nor grow Baton's
// memory beyond the bytes that arrived; the dribblers are cut off by the
// read timeout.
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

	// The heap is Baton's too: it runs in this process.
	var peak uint64
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	heapPeak := func() uint64 { close(stopSampling); <-sampled; return peak }

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
	held, timedOut, closed, answered := 0, 0, 0, map[int]int{}
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
		default:
			answered[e.status]++
		}
	}
	if held > 0 || len(answered) > 0 {
		t.Errorf("of %d dribblers, %d still connected after %v and %v answered otherwise than 408 or a closed connection", dribblers, held, giveUpTime, answered)
	}
	close(allEnded)
	<-dribbled
	heap := heapPeak()
	t.Logf("%d webhooks beside %d idle connections and %d dribblers: p99 %v, max %v; peak HeapInuse %.1f MiB; dribblers cut off by %v (%d answered 408, %d closed)",
		webhooks, idleConns, dribblers, p99.Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond), float64(heap)/(1<<20),
		lastCut.Round(time.Millisecond), timedOut, closed)
	if p99 >= p99Limit {
		t.Errorf("p99 of legitimate webhooks %v, want under %v", p99, p99Limit)
	}
	if heap >= heapLimit {
		t.Errorf("peak HeapInuse %d MiB, want under %d MiB", heap>>20, heapLimit>>20)
	}
}
