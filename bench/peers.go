package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/batonhq/baton/bench/lab"
)

// The targets of a comparison, in the order each run visits them. Each is
// fed by the same generator and (but the baseline) delivers to the same
// recording bot in this process.
const (
	peerBaseline = "baseline" // verify + decode + 200; delivers nothing
	peerDirect   = "direct"   // the generator posts to the bot itself
	peerGlue     = "glue"     // the hand-written forwarder (Glue)
	peerBaton    = "baton"    // Baton, one delivery per request
	peerBatch    = "batch"    // Baton with adapter.batch
	peerCluster  = "cluster"  // three Baton replicas on one PostgreSQL (cluster.go)
)

// Peers lists the targets `baton bench` compares by default, in run
// order. The cluster target, which needs a PostgreSQL, runs only when
// asked for, after them.
var Peers = []string{peerBaseline, peerDirect, peerGlue, peerBaton, peerBatch}

var allPeers = append(slices.Clone(Peers), peerCluster)

// errNoPostgres is the cluster target without a database.
var errNoPostgres = errors.New("bench: the cluster target runs three replicas on one PostgreSQL: give its DSN with -pg-dsn, " +
	"BATON_BENCH_PG_DSN or BATON_TEST_PG_DSN; `bash scripts/pg.sh baton bench -targets baton,cluster` starts a throw-away server for it")

// peer is one target and its runs.
type peer struct {
	name string
	runs []sample
}

// targets are the peers c asks for, in run order.
func targets(c Config) ([]string, error) {
	want := c.Targets
	if len(want) == 0 {
		want = Peers
	}
	if c.NoBaseline {
		want = []string{peerBaton}
	}
	for _, p := range want {
		if !slices.Contains(allPeers, p) {
			return nil, fmt.Errorf("bench: unknown target %q (known: %s)", p, strings.Join(allPeers, ", "))
		}
	}
	if slices.Contains(want, peerCluster) && c.PostgresDSN == "" {
		return nil, errNoPostgres
	}
	var out []string
	for _, p := range allPeers {
		if slices.Contains(want, p) && (p != peerBatch || c.Batch > 0) {
			out = append(out, p)
		}
	}
	return out, nil
}

// compare measures the targets with the same load, alternating them run
// by run; or, with c.SlowBot, Baton with and without a slow second bot.
func compare(ctx context.Context, c Config) error {
	l, err := lab.New(c.Executable, "baton-bench-")
	if err != nil {
		return err
	}
	defer l.Close()

	rec := NewRecorder()
	rec.Delay = c.BotDelay
	botURL, stopBot, err := lab.ServeLocal(rec)
	if err != nil {
		return err
	}
	defer stopBot()

	opt := Options{Secret: []byte(lab.AppSecret), Pages: pageIDs(c.Pages), AppID: lab.BotAppID, Threads: c.Threads,
		Connections: c.Connections, Rate: c.Rate, Duration: c.Duration, Handovers: c.Handovers, TextBytes: c.TextBytes}

	if c.SlowBot > 0 {
		return slowBot(ctx, l, c, opt, botURL, rec)
	}
	names, err := targets(c)
	if err != nil {
		return err
	}
	var pg *lab.Postgres
	if slices.Contains(names, peerCluster) {
		if pg, err = lab.OpenPostgres(ctx, c.PostgresDSN); err != nil {
			return err
		}
		defer pg.Close()
	}
	peers := make([]peer, len(names))
	for i, n := range names {
		peers[i].name = n
	}
	for run := range c.Runs {
		for i := range peers {
			s, err := runPeer(ctx, l, c, opt, run, rec, botURL, peers[i].name, pg)
			if err != nil {
				return fmt.Errorf("%s: %w", peers[i].name, err)
			}
			peers[i].runs = append(peers[i].runs, s)
			fmt.Fprintf(c.Stderr, "%s run %d: %.0f acked/s, %.0f delivered/s, ack %s; e2e %s; lost %d, dup %d, order %d\n",
				peers[i].name, run+1, s.perSec, s.deliveredPerSec, s.ack, s.e2e, s.lost, s.dups, s.order)
		}
	}
	report(c.Stdout, opt, peers)
	return nil
}

// runPeer measures one run of one target; pg is the cluster's database.
func runPeer(ctx context.Context, l *lab.Lab, c Config, opt Options, run int, rec *Recorder, botURL, name string, pg *lab.Postgres) (sample, error) {
	// The bot verifies what it gets, as a real one would: Meta's
	// signature with the app secret (direct, glue), or the adapter's.
	rec.HookKey, rec.MetaSecret = []byte("x"), []byte(lab.AppSecret)
	if c.Adapter == "messenger" && (name == peerBaton || name == peerBatch || name == peerCluster) {
		rec.MetaSecret = []byte("x")
	}
	t := lab.Target{BotURL: botURL, Conns: c.Connections, CommitWait: c.CommitWait, Adapter: c.Adapter}
	switch name {
	case peerBaseline:
		return baseline(ctx, l, opt, run)
	case peerDirect:
		rec.Reset()
		opt.URL, opt.RunID = botURL+"/webhooks/bench-bot", fmt.Sprint("d", run)
		_, s, err := measure(ctx, opt, delivering(rec))
		return s, err
	case peerGlue:
		return glue(ctx, l, opt, run, rec, botURL, c.Connections)
	case peerBatch:
		t.Batch = fmt.Sprintf("{max: %d, wait: %s}", c.Batch, c.BatchWait)
		if p := profileFor(run, c.Profile); p != "" {
			t.Profile = p + ".batch"
		}
		run += 1000 // a data file of its own
	case peerCluster:
		if p := profileFor(run, c.Profile); p != "" {
			t.Profile = p + ".cluster"
		}
		return cluster(ctx, l, opt, run, rec, t, pg)
	}
	if name == peerBaton {
		t.Profile = profileFor(run, c.Profile)
	}
	return baton(ctx, l, opt, run, rec, t)
}

// glue measures one run of `baton bench-glue` forwarding to the bot.
func glue(ctx context.Context, l *lab.Lab, opt Options, run int, rec *Recorder, botURL string, conns int) (sample, error) {
	addr, err := lab.FreeAddr()
	if err != nil {
		return sample{}, err
	}
	cmd, err := l.Child(ctx, []string{"bench-glue", "-listen", addr, "-bot", botURL + "/bot", "-connections", fmt.Sprint(conns)},
		[]string{lab.SecretEnv + "=" + lab.AppSecret}, "http://"+addr+"/healthz", "glue.log")
	if err != nil {
		return sample{}, err
	}
	defer lab.Stop(cmd)
	rec.Reset()
	opt.URL, opt.RunID = "http://"+addr+"/webhooks/bench-bot", fmt.Sprint("g", run)
	_, s, err := measure(ctx, opt, delivering(rec, cmd.Process.Pid))
	return s, err
}
