package bench

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs          []float64
		med, lo, hi float64
	}{
		{nil, 0, 0, 0},
		{[]float64{7}, 7, 7, 7},
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 3, 1, 4}, // an even count takes the upper middle
	} {
		in := slices.Clone(c.xs)
		med, lo, hi := median(in)
		if med != c.med || lo != c.lo || hi != c.hi {
			t.Errorf("median(%v) = %v, %v, %v; want %v, %v, %v", c.xs, med, lo, hi, c.med, c.lo, c.hi)
		}
		if !slices.Equal(in, c.xs) {
			t.Errorf("median sorted its argument: %v", in)
		}
	}
}

func TestReport(t *testing.T) {
	opt := Options{Connections: 8, Threads: 100, Pages: pageIDs(2), Handovers: 0.02, Duration: 2 * time.Second}
	base := []sample{{perSec: 1000, acked: 1000, cpu: 50 * time.Millisecond}, {perSec: 3000, acked: 1000}, {perSec: 2000, acked: 1000}}
	glue := []sample{{perSec: 1000, deliveredPerSec: 1000, delivered: 1000}, {perSec: 1000, deliveredPerSec: 2000, delivered: 1000}, {perSec: 1000, deliveredPerSec: 1500, delivered: 1000}}
	baton := []sample{
		{perSec: 500, deliveredPerSec: 500, delivered: 100, ack: Latencies{P50: time.Millisecond}, lost: 1, dups: 2, failed: 3, maxRSS: 30 << 20, cpu: 10 * time.Millisecond, benchCPU: 5 * time.Millisecond},
		{perSec: 800, deliveredPerSec: 800, delivered: 100, ack: Latencies{P50: 3 * time.Millisecond}, order: 4, mismat: 5, maxRSS: 20 << 20},
		{perSec: 600, deliveredPerSec: 600, delivered: 100, ack: Latencies{P50: 2 * time.Millisecond}, maxRSS: 10 << 20},
	}
	var b strings.Builder
	report(&b, opt, []peer{{peerBaseline, base}, {peerGlue, glue}, {peerBaton, baton}})
	out := b.String()
	for _, want := range []string{
		"\nload: 8 connections, rate max, 100 threads on 2 pages, 2% handovers, 2s per run, 3 runs\n",
		"  glue      glue: verify, decode, POST each event to the bot, 200 after its answer; nothing durable\n",
		"delivered ev/s                                          -       1500 (1000-2000)          600 (500-800)\n",
		"acknowledged ev/s                        2000 (1000-3000)       1000 (1000-1000)          600 (500-800)\n",
		"ack p50 ms                                              -                      -          2.0 (1.0-3.0)\n",
		"cpu/event, measured process us                   0 (0-50)                      -              0 (0-100)\n",
		"cpu/event, all us                                0 (0-50)                      -              0 (0-150)\n",
		"max RSS MiB                                             -                      -             20 (10-30)\n",
		"baton: lost 1, duplicates 2 (other id: 5), out of order 4, refused/failed requests 3 (all runs)\n",
		"  baton/baseline: 0.30 (runs 0.27-0.50)\n",
		"  baton/glue: 0.40 (runs 0.40-0.50)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestTargets(t *testing.T) {
	for _, tt := range []struct {
		c    Config
		want string
	}{
		{Config{Batch: 100}, "baseline direct glue baton batch"},
		{Config{}, "baseline direct glue baton"},
		{Config{Batch: 10, Targets: []string{"batch", "glue"}}, "glue batch"},
		{Config{Batch: 10, NoBaseline: true}, "baton"},
		{Config{Targets: []string{"nope"}}, "error"},
	} {
		got, err := targets(tt.c)
		if s := strings.Join(got, " "); (err != nil && tt.want != "error") || (err == nil && s != tt.want) {
			t.Errorf("targets(%+v) = %q, %v; want %s", tt.c, s, err, tt.want)
		}
	}
}

func TestChaosReport(t *testing.T) {
	var b strings.Builder
	chaosResult{kills: 3, rate: 300, conns: 16, elapsed: 6400 * time.Millisecond, acked: 1000, delivered: 998, lost: 2,
		duplicates: 8, mismatched: 2, outOfOrder: 1, failed: 40,
		restart: Latencies{P50: 20 * time.Millisecond, P99: 30 * time.Millisecond, P999: 30 * time.Millisecond, Max: 30 * time.Millisecond}}.report(&b)
	want := "\nchaos: 3 SIGKILLs at 300 ev/s over 6s, 16 connections\n" +
		"  acknowledged messages 1000, delivered 998, lost 2\n" +
		"  repeats to the bot 10 (1.00%), of which under another delivery id 2; out of order 1\n" +
		"  requests without a 200 (resent) 40\n" +
		"  restart to ready: p50 20.00 ms, p99 30.00 ms, p99.9 30.00 ms, max 30.00 ms\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestSlowBotReport(t *testing.T) {
	var b strings.Builder
	opt := Options{Rate: 100, Connections: 4, Duration: 2 * time.Second}
	slowBotReport(&b, opt, 2*time.Millisecond, 20*time.Millisecond,
		sample{perSec: 98, ack: Latencies{P99: 3 * time.Millisecond}, lost: 1},
		sample{perSec: 99, e2e: Latencies{P50: 4 * time.Millisecond}, order: 2})
	for _, want := range []string{
		"\nslow bot: main bot 2ms per delivery, slow bot 20ms (standby copies of every event); rate 100/s, 4 connections, 2s\n",
		"  acknowledged ev/s                98           99\n",
		"  ack p99 ms                     3.00         0.00\n",
		"  main bot e2e p50 ms            0.00         4.00\n",
		"  lost 1 / 0, out of order 0 / 2\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestStartupReport(t *testing.T) {
	var b strings.Builder
	r := func(n int, cache string, p50 time.Duration) startupResult {
		return startupResult{threads: n, cache: cache, ready: 20 * time.Millisecond, size: 4 << 20, lookup: Latencies{P50: p50}}
	}
	startupReport(&b, []startupResult{r(1000, "warm", time.Millisecond), r(1000, "cold", 2*time.Millisecond),
		r(100000, "warm", 1500*time.Microsecond), r(100000, "cold", 3*time.Millisecond)})
	if out := b.String(); !strings.Contains(out, "     1000 threads warm: file    4 MiB, ready in    20.0 ms,") ||
		!strings.HasSuffix(out, "lookup p50 ratio 100000 / 1000 threads (warm): 1.50\n") {
		t.Errorf("report:\n%s", out)
	}
}

func TestMeasureNeedsTheExecutable(t *testing.T) {
	if err := Measure(context.Background(), Config{}); err == nil {
		t.Fatal("measured without a baton binary")
	}
}

// The cluster's column adds the database's CPU, and its ratios to Baton
// on bbolt: throughput and acknowledgement latency.
func TestReportCluster(t *testing.T) {
	opt := Options{Connections: 8, Threads: 100, Pages: pageIDs(2), Duration: 2 * time.Second}
	baton := []sample{{deliveredPerSec: 1000, delivered: 1000, ack: Latencies{P50: time.Millisecond, P99: 4 * time.Millisecond}, cpu: 100 * time.Millisecond}}
	cluster := []sample{{deliveredPerSec: 600, delivered: 1000, ack: Latencies{P50: 3 * time.Millisecond, P99: 10 * time.Millisecond},
		cpu: 200 * time.Millisecond, dbCPU: 150 * time.Millisecond, dbXacts: 2500, dbWAL: 5 << 20}}
	var b strings.Builder
	report(&b, opt, []peer{{peerBaton, baton}, {peerCluster, cluster}})
	out := b.String()
	for _, want := range []string{
		"cpu/event, PostgreSQL us                                -          150 (150-150)\n",
		"cpu/event, all us                           100 (100-100)          350 (350-350)\n",
		"PostgreSQL write xacts per event                        -       2.50 (2.50-2.50)\n",
		"PostgreSQL WAL KiB per event                            -          5.1 (5.1-5.1)\n",
		"cluster: PostgreSQL's CPU not counted: its server is not a process of this host\n",
		"  cluster/baton: 0.60 (runs 0.60-0.60)\n",
		"  cluster/baton ack p50: 3.00 (runs 3.00-3.00)\n",
		"  cluster/baton ack p99: 2.50 (runs 2.50-2.50)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "baton/cluster") {
		t.Errorf("Baton compared with the cluster, not the cluster with Baton:\n%s", out)
	}
}
