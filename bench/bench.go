// Package bench measures Baton's webhook path as Meta meets it: signed,
// realistic webhooks from many connections, acknowledged latency, and what
// reaches a recording bot (end-to-end latency, losses, duplicates, order
// per thread). The same generator runs against a bare handler that only
// verifies and decodes, so results are ratios that survive a noisy machine.
// Measure runs a whole `baton bench`: Baton and the bare handler run as
// child processes of the baton binary, the load and the bot in this one.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/messenger"
)

// Options describe one load run.
type Options struct {
	URL         string        // webhook URL, e.g. http://127.0.0.1:8080/webhooks/support-bot
	Secret      []byte        // the app secret that signs the webhooks
	Pages       []string      // page ids to spread threads over
	AppID       string        // the receiving app's id, for handover events
	Threads     int           // distinct people
	Connections int           // concurrent senders
	Rate        int           // events per second overall; 0 sends as fast as acknowledged
	Duration    time.Duration // how long to send
	Handovers   float64       // share of pass_thread_control events
	TextBytes   int           // size of each message's text
	RunID       string        // makes mids unique across runs on one data file
	// Resend sends an event again until it is acknowledged, as Meta does
	// when a webhook gets no 200 (the connection waits, so per-thread order
	// holds).
	Resend bool
}

// Result is what the sender saw.
type Result struct {
	Sent, Acked, Failed int
	Start               time.Time
	Elapsed             time.Duration
	AckLatency          Latencies
	// AckedMids are the messages the target acknowledged, by mid.
	AckedMids map[string]bool
}

// AckedPerSecond is the acknowledged throughput.
func (r *Result) AckedPerSecond() float64 { return float64(r.Acked) / r.Elapsed.Seconds() }

// Latencies summarise a sample.
type Latencies struct {
	N                         int
	P50, P99, P999, Max, Mean time.Duration
}

// Summarise sorts the sample and picks its percentiles.
func Summarise(d []time.Duration) Latencies {
	if len(d) == 0 {
		return Latencies{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return Latencies{N: len(d), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: d[len(d)-1], Mean: sum / time.Duration(len(d))}
}

func (l Latencies) String() string {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }
	return fmt.Sprintf("p50 %s ms, p99 %s ms, p99.9 %s ms, max %s ms", ms(l.P50), ms(l.P99), ms(l.P999), ms(l.Max))
}

// Run sends load as opt says. Each connection owns a fixed set of threads
// and sends their events one after the other, so the order Meta would keep
// per thread is the order sent. At a fixed rate, latency is measured from
// when each event was due, not when it left, so a stall is not hidden.
func Run(ctx context.Context, opt Options) (*Result, error) {
	if opt.Connections < 1 || opt.Threads < opt.Connections || len(opt.Pages) == 0 {
		return nil, fmt.Errorf("bench: need connections >= 1, threads >= connections and a page")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: opt.Connections, MaxConnsPerHost: opt.Connections, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()

	text := strings.Repeat("x", max(0, opt.TextBytes))
	var sent, acked, failed atomic.Int64
	var mu sync.Mutex
	lat := make([][]time.Duration, opt.Connections)
	start := time.Now()
	res := &Result{AckedMids: map[string]bool{}, Start: start}
	deadline := start.Add(opt.Duration)
	var interval time.Duration
	if opt.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(opt.Connections) / float64(opt.Rate))
	}
	var wg sync.WaitGroup
	for c := range opt.Connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			seq := map[int]int{}
			// The threads this connection owns: c, c+C, c+2C, ...
			owned := opt.Threads / opt.Connections
			for i := 0; ; i++ {
				due := time.Now()
				if interval > 0 {
					due = start.Add(time.Duration(i)*interval + time.Duration(c)*interval/time.Duration(opt.Connections))
					if d := time.Until(due); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
				t := c + opt.Connections*rng.IntN(owned)
				seq[t]++
				page := opt.Pages[t%len(opt.Pages)]
				psid := strconv.Itoa(7_000_000_000_000_000 + t)
				mid := fmt.Sprintf("m_%s_%d_%d", opt.RunID, c, i)
				var ev string
				if rng.Float64() < opt.Handovers {
					ev = fmt.Sprintf(`"pass_thread_control":{"previous_owner_app_id":null,"new_owner_app_id":"%s","metadata":"%s"}`, opt.AppID, mid)
					mid = ""
				} else {
					// The text carries the thread's sequence and the send time,
					// so the bot can check order and end-to-end latency.
					ev = fmt.Sprintf(`"message":{"mid":"%s","text":"seq=%d sent=%d %s"}`, mid, seq[t], time.Now().UnixNano(), text)
				}
				now := time.Now().UnixMilli()
				body := []byte(fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":%d,"messaging":[{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,%s}]}]}`,
					page, now, psid, page, now, ev))
				sent.Add(1)
				ok := post(ctx, client, opt.URL, opt.Secret, body)
				for !ok && opt.Resend && ctx.Err() == nil {
					failed.Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
					ok = post(ctx, client, opt.URL, opt.Secret, body)
				}
				took := time.Since(due)
				if !ok {
					failed.Add(1)
					continue
				}
				acked.Add(1)
				lat[c] = append(lat[c], took)
				if mid != "" {
					mu.Lock()
					res.AckedMids[mid] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Sent, res.Acked, res.Failed = int(sent.Load()), int(acked.Load()), int(failed.Load())
	res.AckLatency = Summarise(slices.Concat(lat...))
	return res, nil
}

func post(ctx context.Context, c *http.Client, url string, secret, body []byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(messenger.HeaderSignature256, messenger.Sign(secret, body))
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
