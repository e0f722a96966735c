package ingress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/handover"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// The per-event work of single-node Baton, in process: what `baton bench`
// sends (a ~1 KB signed message webhook, 2% pass_thread_control, over
// 1,000 threads) through the same code a webhook takes, on a real bbolt
// file, without sockets. The generator's own work (building and signing
// the bodies) is done before the timer runs.

const (
	benchPage    = "100200300400500"
	benchApp     = "512345678901234"
	benchSecret  = "app-secret"
	benchThreads = 1000
)

// benchIngress is an Ingress as `baton serve` builds it for the bench's
// config (one hosted app, the primary of its page, no rules), with the
// real ledger and rule engine, on a bbolt file in a temp dir.
func benchIngress(b *testing.B) (*Ingress, *mux.Router, *bolt.DB, clock.Clock) {
	b.Helper()
	const yaml = `
admin: {token_env: ADMIN}
apps:
  - name: bench-bot
    app_id: "` + benchApp + `"
    secret_env: SECRET
    verify_token_env: VERIFY
    adapter: {type: http, url: "http://127.0.0.1:1/", secret_env: SECRET}
pages:
  - {id: "` + benchPage + `", primary: bench-bot, tokens: {bench-bot: {token_env: TOKEN}}}
`
	env := map[string]string{"ADMIN": "admin-token-0123456789", "SECRET": benchSecret, "VERIFY": "v", "TOKEN": "T"}
	cfg, err := config.Parse("bench.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		b.Fatal(err)
	}
	top, err := topology.New(cfg, map[string]adapters.Adapter{"bench-bot": nopAdapter{}})
	if err != nil {
		b.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(b.TempDir(), "baton.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	m := metrics.New()
	clk := clock.NewManual(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	log := zap.NewNop()
	errs := recent.New(10, clk, log, m.Errors)
	rules := handover.New(handover.Deps{Store: db, Topology: top, Clock: clk, Log: log, Metrics: m, Errors: errs})
	in := New(Deps{Store: db, Topology: top, Ledger: threads.NewLedger(m.Transitions, handover.AfterTransition, nil, log),
		Rules: rules, Clock: clk, Log: log, Metrics: m, Errors: errs, Webhooks: cfg.Webhooks,
		Deliver: func([]store.Delivery) {}, Reconcile: func(store.ThreadKey, string) {}, Wake: func() {}})
	r := mux.NewRouter()
	in.Register(r)
	return in, r, db, clk
}

// benchText makes a message about 1 KB, as the bench's are.
var benchText = strings.Repeat("Hi, I need help with my order ", 28)

// benchBody is webhook i of the bench's stream: its own mid and
// millisecond, one of 1,000 threads, every 50th a pass_thread_control.
func benchBody(i int, now time.Time) []byte {
	psid := strconv.Itoa(7_000_000_000_000_000 + i%benchThreads)
	ts := now.Add(-time.Hour).UnixMilli() + int64(i)
	ev := fmt.Sprintf(`"message":{"mid":"m_bench_%d","text":"seq=%d %s"}`, i, i, benchText)
	if i%50 == 49 {
		ev = fmt.Sprintf(`"pass_thread_control":{"previous_owner_app_id":null,"new_owner_app_id":"%s","metadata":"m_bench_%d"}`, benchApp, i)
	}
	return fmt.Appendf(nil, `{"object":"page","entry":[{"id":"%s","time":%d,"messaging":[{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,%s}]}]}`,
		benchPage, ts, psid, benchPage, ts, ev)
}

type signedBody struct {
	body []byte
	sig  string
}

func signedBodies(from, n int, now time.Time) []signedBody {
	out := make([]signedBody, n)
	for i := range out {
		body := benchBody(from+i, now)
		out[i] = signedBody{body, messenger.Sign([]byte(benchSecret), body)}
	}
	return out
}

// post serves one webhook through the router as net/http hands it over
// (a body of known length), and checks the 200. The request and the
// answer are made as cheaply as the test can: what they cost is the
// server's, not Baton's.
func post(b *testing.B, r http.Handler, w *answer, s signedBody) {
	req := &http.Request{Method: http.MethodPost, URL: webhookURL, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{messenger.HeaderSignature256: {s.sig}}, Body: io.NopCloser(bytes.NewReader(s.body)),
		ContentLength: int64(len(s.body)), Host: webhookURL.Host, RequestURI: webhookURL.Path}
	w.reset()
	r.ServeHTTP(w, req)
	if w.code != http.StatusOK {
		b.Fatalf("webhook answered %d", w.code)
	}
}

var webhookURL = &url.URL{Scheme: "http", Host: "baton.example", Path: "/webhooks/bench-bot"}

// answer is a ResponseWriter that keeps the status only.
type answer struct {
	h    http.Header
	code int
}

func (w *answer) Header() http.Header { return w.h }
func (w *answer) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *answer) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
func (w *answer) reset() {
	if w.h == nil {
		w.h = http.Header{}
	}
	clear(w.h)
	w.code = 0
}

// chunk is how many bodies are made at a time with the timer stopped:
// made all at once, they would hold the heap large and the collector
// idle.
const chunk = 512

// BenchmarkWebhook: one webhook at a time through the handler (read,
// verify, parse, route, one commit and its fsyncs each). The disk sets
// ns/op; allocs/op is Baton's.
func BenchmarkWebhook(b *testing.B) {
	_, r, _, clk := benchIngress(b)
	var w answer
	b.ReportAllocs()
	cpu := startCPU(b)
	for done := 0; done < b.N; {
		cpu.pause()
		bodies := signedBodies(done, min(chunk, b.N-done), clk.Now())
		cpu.resume()
		for _, s := range bodies {
			post(b, r, &w, s)
		}
		done += len(bodies)
	}
	cpu.report()
}

// BenchmarkWebhookGrouped: 64 concurrent webhooks through the handler,
// sharing group commits as at max load.
func BenchmarkWebhookGrouped(b *testing.B) {
	_, r, _, clk := benchIngress(b)
	bodies := signedBodies(0, b.N, clk.Now())
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32) // 2 cores x 32 = 64 callers
	cpu := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		var w answer
		for pb.Next() {
			post(b, r, &w, bodies[next.Add(1)-1])
		}
	})
	cpu.report()
}

// BenchmarkRoute: the CPU of an event without HTTP and without waiting
// for the disk: verify, parse and route 64 webhooks in each transaction,
// as one group commit of 64 callers runs them. ns/op is per webhook, the
// commit's share included.
func BenchmarkRoute(b *testing.B) {
	in, _, db, clk := benchIngress(b)
	a := in.d.Topology.App("bench-bot")
	h := http.Header{}
	b.ReportAllocs()
	cpu := startCPU(b)
	for done := 0; done < b.N; {
		cpu.pause()
		bodies := signedBodies(done, min(64, b.N-done), clk.Now())
		cpu.resume()
		err := db.Update(context.Background(), func(tx store.Tx) error {
			for _, s := range bodies {
				h.Set(messenger.HeaderSignature256, s.sig)
				if err := in.verifiers[a.Name].Verify(h, s.body); err != nil {
					return err
				}
			}
			return routeBodies(tx, in, a, bodies)
		})
		if err != nil {
			b.Fatal(err)
		}
		done += len(bodies)
	}
	cpu.report()
}

// routeBodies parses and routes bodies in tx, as the group commit runs
// the webhooks' writes.
func routeBodies(tx store.Tx, in *Ingress, a *topology.App, bodies []signedBody) error {
	for _, s := range bodies {
		env, err := messenger.ParseWebhook(s.body)
		if err != nil {
			return err
		}
		if err := in.write(tx, a.Name, a, env); err != nil {
			return err
		}
	}
	return nil
}

// errRollBack ends BenchmarkRouteOnly's transactions unwritten.
var errRollBack = errors.New("rolled back")

// BenchmarkRouteOnly: Baton's own work in the transaction, without the
// commit: parse and route 64 webhooks, then roll back. The threads are
// on file (routed once before the timer starts), so each event reads and
// rewrites a stored record, as at steady state; the marks, journal,
// transcript and outbox entries of the rolled-back writes never land, so
// the file stays as it was. Verify is left out (BenchmarkVerify).
func BenchmarkRouteOnly(b *testing.B) {
	in, _, db, clk := benchIngress(b)
	a := in.d.Topology.App("bench-bot")
	route := func(bodies []signedBody) error {
		return db.Update(context.Background(), func(tx store.Tx) error {
			if err := routeBodies(tx, in, a, bodies); err != nil {
				return err
			}
			return errRollBack
		})
	}
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		return routeBodies(tx, in, a, signedBodies(0, benchThreads, clk.Now()))
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := startCPU(b)
	for done := 0; done < b.N; {
		cpu.pause()
		bodies := signedBodies(benchThreads+done, min(64, b.N-done), clk.Now())
		cpu.resume()
		if err := route(bodies); !errors.Is(err, errRollBack) {
			b.Fatal(err)
		}
		done += len(bodies)
	}
	cpu.report()
}

// cpuMeter reports the process's CPU time per op (cpu-ns/op) beside the
// wall time: a commit's fsync waits for the disk, whose speed on a shared
// machine moves ns/op by half between runs, while the CPU an event costs
// (fsync's kernel time included) holds still. The timer and the meter
// pause together.
type cpuMeter struct {
	b            *testing.B
	spent, since time.Duration
}

func startCPU(b *testing.B) *cpuMeter {
	b.ResetTimer()
	return &cpuMeter{b: b, since: cpuTime()}
}

func (c *cpuMeter) pause() {
	c.b.StopTimer()
	c.spent += cpuTime() - c.since
}

func (c *cpuMeter) resume() {
	c.since = cpuTime()
	c.b.StartTimer()
}

func (c *cpuMeter) report() {
	c.pause()
	if c.spent > 0 && c.b.N > 0 {
		c.b.ReportMetric(float64(c.spent.Nanoseconds())/float64(c.b.N), "cpu-ns/op")
	}
}
