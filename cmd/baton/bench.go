package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench"
	"github.com/batonhq/baton/store/bolt"
)

const benchSecret = "bench-app-secret"

// runBench measures Baton against a bare verify-and-decode handler on this
// machine, each in its own process, with the same load.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 10*time.Second, "how long each run sends")
	conns := fs.Int("connections", 64, "concurrent senders")
	rate := fs.Int("rate", 0, "events per second; 0 = as fast as acknowledged")
	threads := fs.Int("threads", 1000, "distinct people")
	pages := fs.Int("pages", 10, "pages")
	handovers := fs.Float64("handovers", 0.02, "share of pass_thread_control events")
	textBytes := fs.Int("text", 800, "message text size (about 1 KB webhooks)")
	runs := fs.Int("runs", 3, "runs of each target, alternating; medians are reported")
	botDelay := fs.Duration("bot-delay", 0, "time the recording bot takes per delivery")
	skipBaseline := fs.Bool("no-baseline", false, "measure Baton only")
	startup := fs.Int("startup", 0, "instead of load: fill a store with this many threads, then measure Baton's start-up, RSS and thread lookups")
	slowBot := fs.Duration("slow-bot", 0, "add a second bot taking this long per delivery (standby copies of every event) and compare with a run without it")
	commitWait := fs.Duration("commit-wait", 0, "Baton's webhooks.commit_wait: a small write group waits this long for more")
	profile := fs.String("profile", "", "write CPU and allocation profiles of Baton's first run to this file and this file.allocs (pprof format)")
	kills := fs.Int("chaos", 0, "instead of load: SIGKILL Baton this many times at random moments under a steady -rate, resending what got no 200")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kills > 0 {
		r := *rate
		if r == 0 {
			r = 500
		}
		return benchChaos(ctx, *kills, r, *conns, *threads, *pages, stdout, stderr)
	}
	if *startup > 0 {
		return benchStartup(ctx, *startup, *pages, stdout, stderr)
	}
	dir, self, cleanup, err := benchWorkdir("baton-bench-")
	if err != nil {
		return err
	}
	defer cleanup()

	rec := bench.NewRecorder()
	rec.Delay = *botDelay
	botURL, stopBot, err := serveLocal(rec)
	if err != nil {
		return err
	}
	defer stopBot()

	pageIDs := benchPages(*pages)
	opt := bench.Options{Secret: []byte(benchSecret), Pages: pageIDs, AppID: benchAppID, Threads: *threads,
		Connections: *conns, Rate: *rate, Duration: *duration, Handovers: *handovers, TextBytes: *textBytes}

	if *slowBot > 0 {
		return benchSlowBot(ctx, self, dir, opt, botURL, rec, *conns, *slowBot, *botDelay, stdout, stderr)
	}
	var base, baton []sample
	for run := range *runs {
		if !*skipBaseline {
			s, err := benchBaseline(ctx, self, dir, opt, run)
			if err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
			base = append(base, s)
			fmt.Fprintf(stderr, "baseline run %d: %.0f acked/s, ack %s\n", run+1, s.perSec, s.ack)
		}
		s, err := benchBaton(ctx, self, opt, run, rec, benchTarget{Dir: dir, BotURL: botURL, Conns: *conns, CommitWait: *commitWait, Profile: profileFor(run, *profile)})
		if err != nil {
			return fmt.Errorf("baton: %w", err)
		}
		baton = append(baton, s)
		fmt.Fprintf(stderr, "baton run %d: %.0f acked/s, ack %s; e2e %s; lost %d, dup %d, order %d\n",
			run+1, s.perSec, s.ack, s.e2e, s.lost, s.dups, s.order)
	}
	report(stdout, opt, base, baton)
	return nil
}

type sample struct {
	perSec                    float64
	ack, e2e                  bench.Latencies
	sent, acked, failed       int
	lost, dups, order, mismat int
	cpu                       time.Duration // of the measured process
	benchCPU                  time.Duration // of this one: the generator and the recording bot
	elapsed                   time.Duration
	maxRSS                    int64
}

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

func report(w io.Writer, opt bench.Options, base, baton []sample) {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	fmt.Fprintf(w, "\nload: %d connections, rate %s, %d threads on %d pages, %.0f%% handovers, %s per run, %d runs\n",
		opt.Connections, rateString(opt.Rate), opt.Threads, len(opt.Pages), opt.Handovers*100, opt.Duration, len(baton))
	row := func(name string, ss []sample, f func(sample) float64, unit string) float64 {
		m, lo, hi := median(pick(ss, f))
		fmt.Fprintf(w, "  %-34s %10.2f %-6s (runs %.2f to %.2f)\n", name, m, unit, lo, hi)
		return m
	}
	var baseRate float64
	if len(base) > 0 {
		fmt.Fprintln(w, "baseline (verify + decode + 200, nothing stored):")
		baseRate = row("acknowledged", base, func(s sample) float64 { return s.perSec }, "ev/s")
		row("ack p99", base, func(s sample) float64 { return ms(s.ack.P99) }, "ms")
		row("cpu per event", base, func(s sample) float64 { return float64(s.cpu.Microseconds()) / float64(max(1, s.acked)) }, "us")
		row("generator cpu per event", base, func(s sample) float64 { return float64(s.benchCPU.Microseconds()) / float64(max(1, s.acked)) }, "us")
	}
	fmt.Fprintln(w, "baton (durable ack, forward to a bot):")
	rate := row("acknowledged", baton, func(s sample) float64 { return s.perSec }, "ev/s")
	row("ack p50", baton, func(s sample) float64 { return ms(s.ack.P50) }, "ms")
	row("ack p99", baton, func(s sample) float64 { return ms(s.ack.P99) }, "ms")
	row("ack p99.9", baton, func(s sample) float64 { return ms(s.ack.P999) }, "ms")
	row("ack max", baton, func(s sample) float64 { return ms(s.ack.Max) }, "ms")
	row("end-to-end p50", baton, func(s sample) float64 { return ms(s.e2e.P50) }, "ms")
	row("end-to-end p99", baton, func(s sample) float64 { return ms(s.e2e.P99) }, "ms")
	row("cpu per event", baton, func(s sample) float64 { return float64(s.cpu.Microseconds()) / float64(max(1, s.acked)) }, "us")
	row("generator + bot cpu per event", baton, func(s sample) float64 { return float64(s.benchCPU.Microseconds()) / float64(max(1, s.acked)) }, "us")
	row("max RSS", baton, func(s sample) float64 { return float64(s.maxRSS) / (1 << 20) }, "MiB")
	var lost, dups, order, mis, failed int
	for _, s := range baton {
		lost, dups, order, mis, failed = lost+s.lost, dups+s.dups, order+s.order, mis+s.mismat, failed+s.failed
	}
	fmt.Fprintf(w, "  lost %d, duplicates %d (other id: %d), out of order %d, refused/failed requests %d (all runs)\n", lost, dups, mis, order, failed)
	if baseRate > 0 {
		fmt.Fprintf(w, "ratio baton/baseline throughput: %.2f\n", rate/baseRate)
	}
}

func rateString(r int) string {
	if r == 0 {
		return "max"
	}
	return fmt.Sprintf("%d/s", r)
}

func serveLocal(h http.Handler) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// child runs this binary with args and waits until probe answers 200.
func child(ctx context.Context, self string, args []string, env []string, probe, logPath string) (*exec.Cmd, error) {
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, err := http.Get(probe); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop(cmd)
	b, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("%s did not start: %s", args[0], b)
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func measure(ctx context.Context, cmd *exec.Cmd, opt bench.Options) (*bench.Result, sample, error) {
	before, _ := bench.ReadProc(cmd.Process.Pid)
	self, _ := bench.ReadProc(os.Getpid())
	res, err := bench.Run(ctx, opt)
	if err != nil {
		return nil, sample{}, err
	}
	after, _ := bench.ReadProc(cmd.Process.Pid)
	selfAfter, _ := bench.ReadProc(os.Getpid())
	return res, sample{perSec: res.AckedPerSecond(), ack: res.AckLatency, sent: res.Sent, acked: res.Acked, failed: res.Failed,
		cpu: after.CPU - before.CPU, benchCPU: selfAfter.CPU - self.CPU, elapsed: res.Elapsed, maxRSS: after.MaxRS}, nil
}

func benchBaseline(ctx context.Context, self, dir string, opt bench.Options, run int) (sample, error) {
	addr, err := freeAddr()
	if err != nil {
		return sample{}, err
	}
	cmd, err := child(ctx, self, []string{"bench-baseline", "-listen", addr}, []string{"BENCH_SECRET=" + benchSecret},
		"http://"+addr+"/healthz", filepath.Join(dir, "baseline.log"))
	if err != nil {
		return sample{}, err
	}
	defer stop(cmd)
	opt.URL, opt.RunID = "http://"+addr+"/webhooks/bench-bot", fmt.Sprint("b", run)
	_, s, err := measure(ctx, cmd, opt)
	return s, err
}

func benchEnv() []string {
	env := []string{"BENCH_SECRET=" + benchSecret, "BENCH_ADMIN=x", "BENCH_VERIFY=x", "BENCH_HOOK=x", "BENCH_TOKEN=x"}
	// The Go runtime's knobs pass through, so that their effect can be
	// measured: GOGC=400 baton bench.
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// writeBenchConfig writes a baton.yaml for one hosted bench app on every
// page, with the bot at botURL; it returns the path and the admin address.
func writeBenchConfig(dir, data string, pageIDs []string, botURL string, conns int) (cfgPath, public, admin string, err error) {
	return writeBenchConfigWith(dir, data, pageIDs, benchTarget{BotURL: botURL, Conns: conns})
}

// writeBenchConfigWith adds, when slowURL is set, a second hosted app that
// asks for standby copies, as a slow bot.
func writeBenchConfigWith(dir, data string, pageIDs []string, t benchTarget) (cfgPath, public, admin string, err error) {
	botURL, slowURL, conns := t.BotURL, t.SlowURL, t.Conns
	pub, err := freeAddr()
	if err != nil {
		return "", "", "", err
	}
	adm, err := freeAddr()
	if err != nil {
		return "", "", "", err
	}
	var pages strings.Builder
	for _, p := range pageIDs {
		if slowURL != "" {
			fmt.Fprintf(&pages, "  - {id: %q, primary: bench-bot, secondary: [slow-bot], tokens: {bench-bot: {token_env: BENCH_TOKEN}, slow-bot: {token_env: BENCH_TOKEN}}}\n", p)
			continue
		}
		fmt.Fprintf(&pages, "  - {id: %q, primary: bench-bot, tokens: {bench-bot: {token_env: BENCH_TOKEN}}}\n", p)
	}
	slowApp := ""
	if slowURL != "" {
		slowApp = fmt.Sprintf(`  - name: slow-bot
    app_id: "623456789012345"
    secret_env: BENCH_SECRET
    verify_token_env: BENCH_VERIFY
    adapter: {type: http, url: %q, secret_env: BENCH_HOOK, standby: true}
`, slowURL)
	}
	cfg := fmt.Sprintf(`listen: %q
admin: {listen: %q, token_env: BENCH_ADMIN}
data: %q
graph: {url: "http://127.0.0.1:1"}
log: {level: error}
webhooks: {commit_wait: %s}
delivery: {concurrency: %d, backoff: 50ms, max_backoff: 1s}
apps:
  - name: bench-bot
    app_id: %q
    secret_env: BENCH_SECRET
    verify_token_env: BENCH_VERIFY
    adapter: {type: http, url: %q, secret_env: BENCH_HOOK}
%spages:
%s`, pub, adm, data, t.CommitWait, conns, benchAppID, botURL, slowApp, pages.String())
	cfgPath = filepath.Join(dir, "baton.yaml")
	return cfgPath, pub, adm, os.WriteFile(cfgPath, []byte(cfg), 0o600)
}

const benchAppID = "512345678901234"

func fillStore(ctx context.Context, path string, pageIDs []string, n int) error {
	db, err := bolt.Open(path, bolt.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return bench.FillThreads(ctx, db, pageIDs, benchAppID, n, 20000, time.Now())
}

// benchTarget is the Baton a load run measures.
type benchTarget struct {
	Dir        string // work dir: config, data files, log
	BotURL     string // the recording bot
	SlowURL    string // a second, slow bot, or empty
	Conns      int    // delivery concurrency per bot
	CommitWait time.Duration
	Profile    string // write CPU and allocation profiles of the run here (and .allocs), or nothing
}

func profileFor(run int, path string) string {
	if run > 0 {
		return ""
	}
	return path
}

// fetchProfile fetches a profile (profile, allocs) of d from Baton's admin
// listener and writes it to path; the returned channel yields the outcome.
func fetchProfile(ctx context.Context, adm, kind, path string, d time.Duration) <-chan error {
	out := make(chan error, 1)
	go func() {
		secs := max(1, int(d.Seconds()))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", adm, kind, secs), nil)
		if err != nil {
			out <- err
			return
		}
		req.Header.Set("Authorization", "Bearer x") // BENCH_ADMIN in benchEnv
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- fmt.Errorf("profile: %w", err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			out <- fmt.Errorf("profile: %s", resp.Status)
			return
		}
		f, err := os.Create(path)
		if err != nil {
			out <- err
			return
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			out <- fmt.Errorf("profile: %w", err)
			return
		}
		out <- f.Close()
	}()
	return out
}

func benchBaton(ctx context.Context, self string, opt bench.Options, run int, rec *bench.Recorder, t benchTarget) (sample, error) {
	dir := t.Dir
	cfgPath, pub, adm, err := writeBenchConfigWith(dir, filepath.Join(dir, fmt.Sprintf("baton-%d.db", run)), opt.Pages, t)
	if err != nil {
		return sample{}, err
	}
	cmd, err := child(ctx, self, []string{"serve", "-config", cfgPath}, benchEnv(), "http://"+adm+"/readyz", filepath.Join(dir, "baton.log"))
	if err != nil {
		return sample{}, err
	}
	defer stop(cmd)
	rec.Reset()
	opt.URL, opt.RunID = "http://"+pub+"/webhooks/bench-bot", fmt.Sprint("t", run)
	var profiled []<-chan error
	if t.Profile != "" {
		// The whole run but its last second, so the profiles hold load only.
		profiled = append(profiled,
			fetchProfile(ctx, adm, "profile", t.Profile, opt.Duration-time.Second),
			fetchProfile(ctx, adm, "allocs", t.Profile+".allocs", opt.Duration-time.Second))
	}
	res, s, err := measure(ctx, cmd, opt)
	if err != nil {
		return s, err
	}
	for _, p := range profiled {
		if err := <-p; err != nil {
			return s, err
		}
	}
	// Wait for the bot to receive what was acknowledged.
	deadline := time.Now().Add(60 * time.Second)
	for rec.Missing(res.AckedMids) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.lost = rec.Missing(res.AckedMids)
	s.e2e = rec.EndToEnd(res.AckedMids)
	s.dups, s.order, s.mismat = rec.Duplicates, rec.OutOfOrder, rec.Mismatched
	if st, err := bench.ReadProc(cmd.Process.Pid); err == nil {
		s.maxRSS = st.MaxRS
	}
	return s, nil
}

// runBenchBaseline serves the bare handler for runBench.
func runBenchBaseline(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench-baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{app}", bench.Baseline([]byte(os.Getenv("BENCH_SECRET")), 1<<20))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// benchStartup fills a bbolt file with n threads, then starts Baton on it
// (a separate process) and measures the time to ready, RSS, and admin API
// thread lookups, against the same lookups on a store of 1,000 threads.
func benchStartup(ctx context.Context, n, pages int, stdout, stderr io.Writer) error {
	dir, self, cleanup, err := benchWorkdir("baton-startup-")
	if err != nil {
		return err
	}
	defer cleanup()
	pageIDs := benchPages(pages)
	var results []startupResult
	for _, count := range []int{1000, n} {
		data := filepath.Join(dir, fmt.Sprintf("baton-%d.db", count))
		fillStart := time.Now()
		if err := fillStore(ctx, data, pageIDs, count); err != nil {
			return err
		}
		fi, _ := os.Stat(data)
		fmt.Fprintf(stderr, "filled %d threads in %s (%d MiB)\n", count, time.Since(fillStart).Round(time.Millisecond), fi.Size()>>20)
		cfgPath, _, adm, err := writeBenchConfig(dir, data, pageIDs, "http://127.0.0.1:1", 1)
		if err != nil {
			return err
		}
		for _, cache := range []string{"warm", "cold"} {
			if cache == "cold" {
				if err := bench.DropCache(data); err != nil {
					return err
				}
			}
			r, err := startupOnce(ctx, self, cfgPath, dir, adm, pageIDs, count)
			if err != nil {
				return err
			}
			r.threads, r.cache, r.size = count, cache, fi.Size()
			results = append(results, r)
		}
	}
	fmt.Fprintln(stdout, "\nstart-up and lookups (baton serve as its own process; ready = until /readyz answers 200;")
	fmt.Fprintln(stdout, "warm: the file still in the page cache from the fill; cold: dropped from it first, as after a reboot):")
	for _, r := range results {
		fmt.Fprintf(stdout, "  %9d threads %s: file %4d MiB, ready in %7.1f ms, RSS %5.1f MiB at ready, %5.1f MiB after 2,000 lookups (private %5.1f MiB, the rest the data file's mapped pages); admin lookup %s\n",
			r.threads, r.cache, r.size>>20, float64(r.ready)/1e6, float64(r.rss)/(1<<20), float64(r.rssLook)/(1<<20), float64(r.anon)/(1<<20), r.lookup)
	}
	if len(results) == 4 && results[0].lookup.P50 > 0 {
		fmt.Fprintf(stdout, "lookup p50 ratio %d / %d threads (warm): %.2f\n", results[2].threads, results[0].threads,
			float64(results[2].lookup.P50)/float64(results[0].lookup.P50))
	}
	return nil
}

// startupResult is one start of Baton on a filled store.
type startupResult struct {
	threads int
	cache   string // warm: the file as just written, in the page cache; cold: dropped from it first
	ready   time.Duration
	rss     int64 // at ready
	rssLook int64 // after the lookups
	anon    int64 // of which private memory (the heap), after the lookups
	lookup  bench.Latencies
	size    int64
}

// startupOnce starts Baton on cfgPath, times it to ready, reads 2,000
// threads at random through the admin API and stops it.
func startupOnce(ctx context.Context, self, cfgPath, dir, adm string, pageIDs []string, count int) (startupResult, error) {
	start := time.Now()
	cmd, err := child(ctx, self, []string{"serve", "-config", cfgPath}, benchEnv(), "http://"+adm+"/readyz", filepath.Join(dir, "baton.log"))
	if err != nil {
		return startupResult{}, err
	}
	defer stop(cmd)
	ready := time.Since(start)
	st, _ := bench.ReadProc(cmd.Process.Pid)
	var lat []time.Duration
	for i := range 2000 {
		t := (i * 7919) % count
		u := fmt.Sprintf("http://%s/admin/threads/%s/%s", adm, pageIDs[t%len(pageIDs)], bench.PSID(t))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer x")
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return startupResult{}, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return startupResult{}, fmt.Errorf("lookup %s: %s", u, resp.Status)
		}
		lat = append(lat, time.Since(t0))
	}
	after, _ := bench.ReadProc(cmd.Process.Pid)
	return startupResult{ready: ready, rss: st.RSS, rssLook: after.RSS, anon: after.Anon, lookup: bench.Summarise(lat)}, nil
}

// benchChaos runs load at a fixed rate while Baton is killed with SIGKILL
// at random moments and restarted on the same file. The sender resends
// what got no 200, as Meta does. It reports what was acknowledged,
// delivered, lost and repeated, and the restart-to-ready times.
func benchChaos(ctx context.Context, kills, rate, conns, threads, pages int, stdout, stderr io.Writer) error {
	dir, self, cleanup, err := benchWorkdir("baton-chaos-")
	if err != nil {
		return err
	}
	defer cleanup()
	rec := bench.NewRecorder()
	botURL, stopBot, err := serveLocal(rec)
	if err != nil {
		return err
	}
	defer stopBot()
	pageIDs := benchPages(pages)
	cfgPath, pub, adm, err := writeBenchConfig(dir, filepath.Join(dir, "baton.db"), pageIDs, botURL, conns)
	if err != nil {
		return err
	}
	logPath := filepath.Join(dir, "baton.log")
	start := func() (*exec.Cmd, time.Duration, error) {
		t0 := time.Now()
		cmd, err := child(ctx, self, []string{"serve", "-config", cfgPath}, benchEnv(), "http://"+adm+"/readyz", logPath)
		return cmd, time.Since(t0), err
	}
	cmd, _, err := start()
	if err != nil {
		return err
	}
	// Load for as long as the kills take, plus a quiet tail.
	loadCtx, stopLoad := context.WithCancel(ctx)
	done := make(chan *bench.Result, 1)
	go func() {
		res, _ := bench.Run(loadCtx, bench.Options{URL: "http://" + pub + "/webhooks/bench-bot", Secret: []byte(benchSecret), Pages: pageIDs,
			AppID: benchAppID, Threads: threads, Connections: conns, Rate: rate, Duration: time.Hour, TextBytes: 800, RunID: "chaos", Resend: true})
		done <- res
	}()
	var readies []time.Duration
	for k := range kills {
		time.Sleep(300*time.Millisecond + time.Duration(rand.N(1200))*time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		var ready time.Duration
		if cmd, ready, err = start(); err != nil {
			stopLoad()
			return fmt.Errorf("restart %d: %w", k+1, err)
		}
		readies = append(readies, ready)
		fmt.Fprintf(stderr, "kill %d: back in %s\n", k+1, ready.Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second)
	stopLoad()
	res := <-done
	deadline := time.Now().Add(60 * time.Second)
	for rec.Missing(res.AckedMids) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stop(cmd)
	delivered := len(res.AckedMids) - rec.Missing(res.AckedMids)
	r := bench.Summarise(readies)
	fmt.Fprintf(stdout, "\nchaos: %d SIGKILLs at %d ev/s over %s, %d connections\n", kills, rate, res.Elapsed.Round(time.Second), conns)
	fmt.Fprintf(stdout, "  acknowledged messages %d, delivered %d, lost %d\n", len(res.AckedMids), delivered, rec.Missing(res.AckedMids))
	fmt.Fprintf(stdout, "  repeats to the bot %d (%.2f%%), of which under another delivery id %d; out of order %d\n",
		rec.Duplicates+rec.Mismatched, 100*float64(rec.Duplicates+rec.Mismatched)/float64(max(1, delivered)), rec.Mismatched, rec.OutOfOrder)
	fmt.Fprintf(stdout, "  requests without a 200 (resent) %d\n", res.Failed)
	fmt.Fprintf(stdout, "  restart to ready: %s\n", r)
	return nil
}

// benchSlowBot measures the same load with and without a second bot that
// is slow, to show that a slow bot holds up neither ingress nor others.
func benchSlowBot(ctx context.Context, self, dir string, opt bench.Options, botURL string, rec *bench.Recorder, conns int, slow, fast time.Duration, stdout, stderr io.Writer) error {
	if fast == 0 {
		fast = slow / 10
	}
	rec.Delay = fast
	slowRec := bench.NewRecorder()
	slowRec.Delay = slow
	slowURL, stopSlow, err := serveLocal(slowRec)
	if err != nil {
		return err
	}
	defer stopSlow()
	without, err := benchBaton(ctx, self, opt, 100, rec, benchTarget{Dir: dir, BotURL: botURL, Conns: conns})
	if err != nil {
		return err
	}
	with, err := benchBaton(ctx, self, opt, 101, rec, benchTarget{Dir: dir, BotURL: botURL, SlowURL: slowURL, Conns: conns})
	if err != nil {
		return err
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	fmt.Fprintf(stdout, "\nslow bot: main bot %s per delivery, slow bot %s (standby copies of every event); rate %s, %d connections, %s\n",
		fast, slow, rateString(opt.Rate), opt.Connections, opt.Duration)
	fmt.Fprintf(stdout, "  %-22s %12s %12s\n", "", "without", "with")
	fmt.Fprintf(stdout, "  %-22s %12.0f %12.0f\n", "acknowledged ev/s", without.perSec, with.perSec)
	fmt.Fprintf(stdout, "  %-22s %12.2f %12.2f\n", "ack p99 ms", ms(without.ack.P99), ms(with.ack.P99))
	fmt.Fprintf(stdout, "  %-22s %12.2f %12.2f\n", "main bot e2e p50 ms", ms(without.e2e.P50), ms(with.e2e.P50))
	fmt.Fprintf(stdout, "  %-22s %12.2f %12.2f\n", "main bot e2e p99 ms", ms(without.e2e.P99), ms(with.e2e.P99))
	fmt.Fprintf(stdout, "  lost %d / %d, out of order %d / %d\n", without.lost, with.lost, without.order, with.order)
	return nil
}

// benchPages names n pages.
func benchPages(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(100200300400500 + i)
	}
	return ids
}

// benchWorkdir makes a scratch directory and finds this binary, which the
// bench modes start as their baseline and Baton processes.
func benchWorkdir(prefix string) (dir, self string, cleanup func(), err error) {
	if self, err = os.Executable(); err != nil {
		return "", "", nil, err
	}
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", nil, err
	}
	return dir, self, func() { os.RemoveAll(dir) }, nil
}
