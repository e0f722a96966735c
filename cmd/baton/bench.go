package main

import (
	"context"
	"flag"
	"io"
	"os"
	"strings"
	"time"

	"github.com/batonhq/baton/bench"
)

// runBench measures Baton against a bare verify-and-decode handler on this
// machine, each in its own process (this binary), with the same load.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := bench.Config{Stdout: stdout, Stderr: stderr}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long each run sends")
	fs.IntVar(&c.Connections, "connections", 64, "concurrent senders")
	fs.IntVar(&c.Rate, "rate", 0, "events per second; 0 = as fast as acknowledged")
	fs.IntVar(&c.Threads, "threads", 1000, "distinct people")
	fs.IntVar(&c.Pages, "pages", 10, "pages")
	fs.Float64Var(&c.Handovers, "handovers", 0.02, "share of pass_thread_control events")
	fs.IntVar(&c.TextBytes, "text", 800, "message text size (about 1 KB webhooks)")
	fs.IntVar(&c.Runs, "runs", 3, "runs of each target, alternating; medians are reported")
	fs.DurationVar(&c.BotDelay, "bot-delay", 0, "time the recording bot takes per delivery")
	fs.BoolVar(&c.NoBaseline, "no-baseline", false, "measure Baton only (no peers, no batched run)")
	targets := fs.String("targets", strings.Join(bench.Peers, ","), "what to compare, alternating run by run: baseline (verify+decode+200), direct (to the bot), glue (a hand-written forwarder), baton, batch (baton with adapter.batch), cluster (3 replicas on PostgreSQL; not by default, needs -pg-dsn)")
	fs.StringVar(&c.PostgresDSN, "pg-dsn", "", "the PostgreSQL of the cluster target (default: $BATON_BENCH_PG_DSN, else $BATON_TEST_PG_DSN, which `bash scripts/pg.sh baton bench ...` sets to a throw-away server); each run uses a schema of its own and drops it")
	fs.IntVar(&c.Batch, "batch", 100, "the batched Baton's adapter batch.max (0: no batched run)")
	fs.DurationVar(&c.BatchWait, "batch-wait", 0, "the batched Baton's adapter batch.wait")
	fs.StringVar(&c.Adapter, "adapter", "http", "the bench bot's adapter type for Baton: http (Baton's envelope) or messenger (Meta's format)")
	fs.IntVar(&c.Startup, "startup", 0, "instead of load: fill a store with this many threads, then measure Baton's start-up, RSS and thread lookups")
	fs.DurationVar(&c.SlowBot, "slow-bot", 0, "add a second bot taking this long per delivery (standby copies of every event) and compare with a run without it")
	fs.DurationVar(&c.CommitWait, "commit-wait", 0, "Baton's webhooks.commit_wait: a small write group waits this long for more")
	fs.StringVar(&c.Profile, "profile", "", "write CPU and allocation profiles of Baton's first run to this file and this file.allocs (pprof format); of the batched Baton's to this file.batch and .batch.allocs; with -targets ...,cluster also of the cluster's first replica to this file.cluster and .cluster.allocs")
	fs.IntVar(&c.Backlog, "backlog", 0, "instead of load: fill a store with this many deliveries pending on -threads threads for a bot that is down, then measure Baton's start-up and RSS on it, and the delivery rate, order and losses once the bot is back")
	fs.IntVar(&c.Chaos, "chaos", 0, "instead of load: SIGKILL Baton this many times at random moments under a steady -rate, resending what got no 200")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Targets = strings.Split(*targets, ",")
	// Read here, not as the flag's default, so that -h does not print a
	// DSN, which may hold a password.
	for _, k := range []string{"BATON_BENCH_PG_DSN", "BATON_TEST_PG_DSN"} {
		if c.PostgresDSN == "" {
			c.PostgresDSN = os.Getenv(k)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c.Executable = self
	return bench.Measure(ctx, c)
}

// runBenchBaseline serves the bare handler that bench compares Baton with.
func runBenchBaseline(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench-baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return bench.ServeBaseline(ctx, *listen)
}

// runBenchGlue serves the hand-written forwarder that bench compares Baton
// with.
func runBenchGlue(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench-glue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	bot := fs.String("bot", "", "the bot's URL")
	conns := fs.Int("connections", 64, "pooled connections to the bot")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return bench.ServeGlue(ctx, *listen, *bot, *conns)
}
