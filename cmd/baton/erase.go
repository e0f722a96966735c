package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
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
	admin := fs.String("admin", envOr("BATON_ADMIN_URL", "http://127.0.0.1:8081"), "admin API URL (BATON_ADMIN_URL)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: baton erase [-admin URL] PAGE PSID", errUsage)
	}
	token := os.Getenv("BATON_ADMIN_TOKEN")
	if token == "" {
		return fmt.Errorf("%w: set BATON_ADMIN_TOKEN to the admin token", errUsage)
	}
	page, psid := fs.Arg(0), fs.Arg(1)
	u := strings.TrimSuffix(*admin, "/") + "/admin/threads/" + url.PathEscape(page) + "/" + url.PathEscape(psid) + "/erase"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	// An erase scans the journal: a large one takes a while.
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var v api.ErasedView
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("admin API: %w", err)
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
