package bench

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// median returns the median of xs (the upper one of an even count) and
// its range.
func median(xs []float64) (med, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}

func pick(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// events is what a sample's per-event figures divide by: the messages
// the bot received, or for the baseline, which delivers nothing, the
// acknowledged events.
func (s sample) events() int {
	if s.delivered > 0 {
		return s.delivered
	}
	return s.acked
}

// rate is a sample's throughput for ratios: delivered per second, or
// acknowledged for the baseline.
func (s sample) rate() float64 {
	if s.deliveredPerSec > 0 {
		return s.deliveredPerSec
	}
	return s.perSec
}

func perEvent(d time.Duration, s sample) float64 {
	return float64(d.Microseconds()) / float64(max(1, s.events()))
}

// peerTitles say what each target is, in the report.
var peerTitles = map[string]string{
	peerBaseline: "baseline: verify + decode + 200, nothing stored or delivered",
	peerDirect:   "direct: the generator posts to the bot itself (the bot verifies and decodes)",
	peerGlue:     "glue: verify, decode, POST each event to the bot, 200 after its answer; nothing durable",
	peerBaton:    "baton: durable ack, then one delivery per request",
	peerBatch:    "batch: baton with adapter.batch",
	peerCluster: fmt.Sprintf("cluster: %d baton serve replicas on one PostgreSQL, behind a round robin in the bench process; "+
		"measured process: the replicas together (max RSS: their peaks summed)", clusterSize),
}

// report writes the comparison: for each measure, the median of each
// target's runs with their range; then the throughput ratios of each
// Baton to each peer, run by run (the same run's figures), median and
// range.
func report(w io.Writer, opt Options, peers []peer) {
	runs := 0
	for _, p := range peers {
		runs = max(runs, len(p.runs))
	}
	fmt.Fprintf(w, "\nload: %d connections, rate %s, %d threads on %d pages, %.0f%% handovers, %s per run, %d runs\n",
		opt.Connections, rateString(opt.Rate), opt.Threads, len(opt.Pages), opt.Handovers*100, opt.Duration, runs)
	for _, p := range peers {
		fmt.Fprintf(w, "  %-9s %s\n", p.name, peerTitles[p.name])
	}
	fmt.Fprintf(w, "%-34s", "")
	for _, p := range peers {
		fmt.Fprintf(w, " %22s", p.name)
	}
	fmt.Fprintln(w)
	row := func(name, format string, f func(sample) float64) {
		fmt.Fprintf(w, "%-34s", name)
		for _, p := range peers {
			m, lo, hi := median(pick(p.runs, f))
			cell := "-"
			if hi > 0 {
				cell = fmt.Sprintf(format+" ("+format+"-"+format+")", m, lo, hi)
			}
			fmt.Fprintf(w, " %22s", cell)
		}
		fmt.Fprintln(w)
	}
	row("delivered ev/s", "%.0f", func(s sample) float64 { return s.deliveredPerSec })
	row("acknowledged ev/s", "%.0f", func(s sample) float64 { return s.perSec })
	row("ack p50 ms", "%.1f", func(s sample) float64 { return ms(s.ack.P50) })
	row("ack p99 ms", "%.1f", func(s sample) float64 { return ms(s.ack.P99) })
	row("ack max ms", "%.0f", func(s sample) float64 { return ms(s.ack.Max) })
	row("end-to-end p50 ms", "%.1f", func(s sample) float64 { return ms(s.e2e.P50) })
	row("end-to-end p99 ms", "%.1f", func(s sample) float64 { return ms(s.e2e.P99) })
	row("cpu/event, measured process us", "%.0f", func(s sample) float64 { return perEvent(s.cpu, s) })
	row("cpu/event, generator + bot us", "%.0f", func(s sample) float64 { return perEvent(s.benchCPU, s) })
	row("cpu/event, PostgreSQL us", "%.0f", func(s sample) float64 { return perEvent(s.dbCPU, s) })
	row("cpu/event, all us", "%.0f", func(s sample) float64 { return perEvent(s.cpu+s.benchCPU+s.dbCPU, s) })
	row("PostgreSQL write xacts per event", "%.2f", func(s sample) float64 { return float64(s.dbXacts) / float64(max(1, s.events())) })
	row("PostgreSQL WAL KiB per event", "%.1f", func(s sample) float64 { return float64(s.dbWAL) / 1024 / float64(max(1, s.events())) })
	row("store commits per event", "%.2f", func(s sample) float64 { return s.store.Commits / float64(max(1, s.events())) })
	row("writes per store commit", "%.1f", func(s sample) float64 { return s.store.Writes / max(1, s.store.Commits) })
	row("ms per store commit", "%.2f", func(s sample) float64 { return ms(s.store.Time) / max(1, s.store.Commits) })
	row("of which running the writes ms", "%.2f", func(s sample) float64 { return ms(s.store.Apply) / max(1, s.store.Commits) })
	row("messages per request to the bot", "%.2f", func(s sample) float64 { return float64(s.delivered) / float64(max(1, s.requests)) })
	row("max RSS MiB", "%.0f", func(s sample) float64 { return float64(s.maxRSS) / (1 << 20) })
	for _, p := range peers {
		if p.name == peerBaseline {
			continue
		}
		var lost, dups, order, mis, failed int
		for _, s := range p.runs {
			lost, dups, order, mis, failed = lost+s.lost, dups+s.dups, order+s.order, mis+s.mismat, failed+s.failed
		}
		fmt.Fprintf(w, "%s: lost %d, duplicates %d (other id: %d), out of order %d, refused/failed requests %d (all runs)\n", p.name, lost, dups, mis, order, failed)
		if p.name == peerCluster && len(p.runs) > 0 && !p.runs[0].dbOnHost {
			fmt.Fprintln(w, "cluster: PostgreSQL's CPU not counted: its server is not a process of this host")
		}
	}
	fmt.Fprintln(w, "ratios of delivered ev/s (the baseline's: acknowledged), run by run:")
	for _, b := range peers {
		if b.name != peerBaton && b.name != peerBatch && b.name != peerCluster {
			continue
		}
		for _, o := range peers {
			if o.name == b.name || o.name == peerBatch || o.name == peerCluster {
				continue
			}
			if m, lo, hi, ok := runRatio(b, o, sample.rate); ok {
				fmt.Fprintf(w, "  %s/%s: %.2f (runs %.2f-%.2f)\n", b.name, o.name, m, lo, hi)
			}
			if b.name != peerCluster || o.name != peerBaton {
				continue
			}
			// The replicas' acknowledgement waits for PostgreSQL's commit
			// instead of bbolt's: how much longer it is.
			for _, q := range []struct {
				name string
				f    func(sample) float64
			}{{"ack p50", func(s sample) float64 { return ms(s.ack.P50) }}, {"ack p99", func(s sample) float64 { return ms(s.ack.P99) }}} {
				if m, lo, hi, ok := runRatio(b, o, q.f); ok {
					fmt.Fprintf(w, "  %s/%s %s: %.2f (runs %.2f-%.2f)\n", b.name, o.name, q.name, m, lo, hi)
				}
			}
		}
	}
}

// runRatio is the median and range of b's f over o's, run by run.
func runRatio(b, o peer, f func(sample) float64) (med, lo, hi float64, ok bool) {
	var rs []float64
	for i := range min(len(b.runs), len(o.runs)) {
		if r := f(o.runs[i]); r > 0 {
			rs = append(rs, f(b.runs[i])/r)
		}
	}
	med, lo, hi = median(rs)
	return med, lo, hi, len(rs) > 0
}

func rateString(r int) string {
	if r == 0 {
		return "max"
	}
	return fmt.Sprintf("%d/s", r)
}

// slowBotReport writes the runs without and with a slow second bot side by
// side.
func slowBotReport(w io.Writer, opt Options, fast, slow time.Duration, without, with sample) {
	fmt.Fprintf(w, "\nslow bot: main bot %s per delivery, slow bot %s (standby copies of every event); rate %s, %d connections, %s\n",
		fast, slow, rateString(opt.Rate), opt.Connections, opt.Duration)
	fmt.Fprintf(w, "  %-22s %12s %12s\n", "", "without", "with")
	fmt.Fprintf(w, "  %-22s %12.0f %12.0f\n", "acknowledged ev/s", without.perSec, with.perSec)
	fmt.Fprintf(w, "  %-22s %12.2f %12.2f\n", "ack p99 ms", ms(without.ack.P99), ms(with.ack.P99))
	fmt.Fprintf(w, "  %-22s %12.2f %12.2f\n", "main bot e2e p50 ms", ms(without.e2e.P50), ms(with.e2e.P50))
	fmt.Fprintf(w, "  %-22s %12.2f %12.2f\n", "main bot e2e p99 ms", ms(without.e2e.P99), ms(with.e2e.P99))
	fmt.Fprintf(w, "  lost %d / %d, out of order %d / %d\n", without.lost, with.lost, without.order, with.order)
}

// chaosResult is what a chaos run saw.
type chaosResult struct {
	kills, rate, conns int
	elapsed            time.Duration
	// Messages acknowledged, and of them delivered and lost.
	acked, delivered, lost int
	// What the bot saw: repeats under the same and another delivery id.
	duplicates, mismatched, outOfOrder int
	failed                             int // requests without a 200, resent
	restart                            Latencies
}

func (r chaosResult) report(w io.Writer) {
	repeats := r.duplicates + r.mismatched
	fmt.Fprintf(w, "\nchaos: %d SIGKILLs at %d ev/s over %s, %d connections\n", r.kills, r.rate, r.elapsed.Round(time.Second), r.conns)
	fmt.Fprintf(w, "  acknowledged messages %d, delivered %d, lost %d\n", r.acked, r.delivered, r.lost)
	fmt.Fprintf(w, "  repeats to the bot %d (%.2f%%), of which under another delivery id %d; out of order %d\n",
		repeats, 100*float64(repeats)/float64(max(1, r.delivered)), r.mismatched, r.outOfOrder)
	fmt.Fprintf(w, "  requests without a 200 (resent) %d\n", r.failed)
	fmt.Fprintf(w, "  restart to ready: %s\n", r.restart)
}

// startupResult is one start of Baton on a filled store.
type startupResult struct {
	threads int
	cache   string // warm: the file as just written, in the page cache; cold: dropped from it first
	ready   time.Duration
	rss     int64 // at ready
	rssLook int64 // after the lookups
	anon    int64 // of which private memory (the heap), after the lookups
	lookup  Latencies
	size    int64
}

// startupReport writes the starts, and how lookups on the large store
// compare with the small one, warm.
func startupReport(w io.Writer, results []startupResult) {
	fmt.Fprintln(w, "\nstart-up and lookups (baton serve as its own process; ready = until /readyz answers 200;")
	fmt.Fprintln(w, "warm: the file still in the page cache from the fill; cold: dropped from it first, as after a reboot):")
	for _, r := range results {
		fmt.Fprintf(w, "  %9d threads %s: file %4d MiB, ready in %7.1f ms, RSS %5.1f MiB at ready, %5.1f MiB after 2,000 lookups (private %5.1f MiB, the rest the data file's mapped pages); admin lookup %s\n",
			r.threads, r.cache, r.size>>20, float64(r.ready)/1e6, float64(r.rss)/(1<<20), float64(r.rssLook)/(1<<20), float64(r.anon)/(1<<20), r.lookup)
	}
	if len(results) == 4 && results[0].lookup.P50 > 0 {
		fmt.Fprintf(w, "lookup p50 ratio %d / %d threads (warm): %.2f\n", results[2].threads, results[0].threads,
			float64(results[2].lookup.P50)/float64(results[0].lookup.P50))
	}
}
