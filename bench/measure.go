package bench

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"
)

// Config is one `baton bench`: the binary it starts, where it writes, and
// what it measures. By default Measure compares Baton, with and without
// batched deliveries, with its peers under the same load (peers.go); Chaos, Startup, Backlog and SlowBot choose
// another measurement instead, tried in that order.
type Config struct {
	// Executable is the baton binary. Measure starts it as `baton serve`
	// and `baton bench-baseline`, each in a process of its own, so that
	// what is measured does not share a Go runtime with the load.
	Executable string
	Stdout     io.Writer // the report
	Stderr     io.Writer // progress: a line per run, kill or fill

	Duration    time.Duration // how long each run sends
	Connections int           // concurrent senders
	Rate        int           // events per second; 0 sends as fast as acknowledged
	Threads     int           // distinct people
	Pages       int           // pages the threads are spread over
	Handovers   float64       // share of pass_thread_control events
	TextBytes   int           // message text size
	Runs        int           // runs of each target, alternating; medians are reported
	BotDelay    time.Duration // time the recording bot takes per delivery
	NoBaseline  bool          // measure Baton only
	// Targets are the peers to compare (see Peers; empty: all of them);
	// "cluster" adds three replicas on PostgreSQL, on the database of
	// PostgresDSN, each run in a schema of its own that it drops.
	Targets     []string
	PostgresDSN string
	// Batch is the batched Baton's adapter batch.max (0: no batched
	// run), BatchWait its batch.wait; Adapter is the bench bot's adapter
	// type for both Batons (http or messenger).
	Batch      int
	BatchWait  time.Duration
	Adapter    string
	CommitWait time.Duration // Baton's webhooks.commit_wait
	// Profile, when set, is where CPU and allocation (Profile+".allocs")
	// profiles of Baton's first run are written, in pprof format.
	Profile string

	// Chaos SIGKILLs Baton this many times at random moments under a
	// steady Rate (500/s when Rate is 0), resending what got no 200.
	Chaos int
	// Startup fills a store with this many threads, then measures Baton's
	// start-up, RSS and thread lookups.
	Startup int
	// SlowBot adds a second bot taking this long per delivery (standby
	// copies of every event) and compares with a run without it.
	SlowBot time.Duration
	// Backlog fills a store with this many deliveries pending on Threads
	// threads for a bot that is down, then measures Baton's start-up and
	// memory on it, and the delivery once the bot is back.
	Backlog int
}

// Measure runs the measurement c chooses and writes its report to
// c.Stdout.
func Measure(ctx context.Context, c Config) error {
	if c.Executable == "" {
		return errors.New("bench: no baton executable to start")
	}
	switch {
	case c.Chaos > 0:
		return chaos(ctx, c)
	case c.Startup > 0:
		return startup(ctx, c)
	case c.Backlog > 0:
		return backlog(ctx, c)
	}
	return compare(ctx, c)
}

// pageIDs names n pages.
func pageIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(100200300400500 + i)
	}
	return ids
}
