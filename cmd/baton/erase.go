package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/orchestrator/api"
)

// runErase removes everything a running Baton keeps about one person,
// through the admin API: what an operator runs for a request that did not
// come through Meta's data deletion callback.
func runErase(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := adminFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: baton erase [-admin URL] PAGE PSID", errUsage)
	}
	c, err := newAdminClient(*admin)
	if err != nil {
		return err
	}
	var v api.ErasedView
	// An erase scans the journal: a large one takes a while.
	if err := c.call(ctx, http.MethodPost, "/admin/threads/"+url.PathEscape(fs.Arg(0))+"/"+url.PathEscape(fs.Arg(1))+"/erase", 10*time.Minute, &v); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, v)
	}
	e := v.Erased
	fmt.Fprintf(stdout, "baton erase: %d record(s) about %s on page %s removed\n", e.Total(), v.PSID, v.PageID)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, row := range []struct {
		what string
		n    int
	}{
		{"thread records", e.Threads}, {"history entries", e.History}, {"journal entries", e.Journal},
		{"pending deliveries", e.Pending}, {"dead letters", e.Dead}, {"rule jobs", e.Jobs},
		{"thread-control intents", e.Intents}, {"one-time tokens", e.OneTimeTokens}, {"dedup marks", e.DedupMarks},
	} {
		fmt.Fprintf(tw, "  %s\t%d\n", row.what, row.n)
	}
	return tw.Flush()
}
