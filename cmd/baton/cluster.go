package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/orchestrator/cluster"
)

// runCluster shows the replicas of a cluster and the shards each holds,
// through any replica's admin API.
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		return fmt.Errorf("%w: baton cluster status [-admin URL] [-shards] [-json]", errUsage)
	}
	fs := flag.NewFlagSet("cluster status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := adminFlag(fs)
	shards := fs.Bool("shards", false, "list every shard's lease too")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := newAdminClient(*admin)
	if err != nil {
		return err
	}
	var st cluster.Status
	if err := c.call(ctx, http.MethodGet, "/admin/cluster", 10*time.Second, &st); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, st)
	}
	printCluster(stdout, st, *shards, time.Now())
	return nil
}

// printCluster writes the status as operators read it: one line per
// replica, what is unheld, and on request every lease.
func printCluster(w io.Writer, st cluster.Status, shards bool, now time.Time) {
	fmt.Fprintf(w, "shards %d: %d held, %d unheld, %d held by a replica whose heartbeat ran out\n", st.Shards, st.Held, st.Unheld, st.Orphaned)
	fmt.Fprintf(w, "replicas: %d live, %d gone (earlier starts)\n\n", st.ReplicasLive, st.ReplicasGone)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tID\tLIVE\tHEARTBEAT\tSHARDS\tADDR")
	for _, r := range st.Replicas {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%d\t%s\n", r.Name, r.ID, r.Live, until(r.ExpiresAt, now), r.ShardCount, r.Addr)
	}
	_ = tw.Flush()
	var unheld []int
	for _, l := range st.Leases {
		if !l.Held {
			unheld = append(unheld, l.Shard)
		}
	}
	if len(unheld) > 0 {
		fmt.Fprintf(w, "\nunheld shards (their threads wait for an owner): %s\n", cluster.Ranges(unheld))
	}
	if !shards {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tOWNER\tEPOCH\tHELD\tEXPIRES")
	for _, l := range st.Leases {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%v\t%s\n", l.Shard, l.Owner, l.Epoch, l.Held, until(l.ExpiresAt, now))
	}
	_ = tw.Flush()
}

// until says when t is from now: "in 4.2s", "3s ago", "-" for never.
func until(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(100 * time.Millisecond)
	if d >= 0 {
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}
