package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/orchestrator/api"
)

// runThreads lists threads or shows one, through the admin API.
func runThreads(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "show") {
		return fmt.Errorf("%w: baton threads list [-page P] [-owner APP] [-state S] | show PAGE PSID", errUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("threads "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := adminFlag(fs)
	page := fs.String("page", "", "only this page")
	owner := fs.String("owner", "", "only threads owned by this app (or idle)")
	state := fs.String("state", "", "only this state: idle, primary, secondary")
	limit := fs.Int("limit", 100, "threads per request")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := newAdminClient(*admin)
	if err != nil {
		return err
	}
	get := func(path string, out any) error { return c.call(ctx, http.MethodGet, path, 10*time.Second, out) }
	if sub == "show" {
		if fs.NArg() != 2 {
			return fmt.Errorf("%w: baton threads show PAGE PSID", errUsage)
		}
		var th api.ThreadView
		if err := get("/admin/threads/"+url.PathEscape(fs.Arg(0))+"/"+url.PathEscape(fs.Arg(1)), &th); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, th)
		}
		printThread(stdout, th)
		return nil
	}
	q := url.Values{}
	for k, v := range map[string]string{"page": *page, "owner": *owner, "state": *state, "limit": fmt.Sprint(*limit)} {
		if v != "" {
			q.Set(k, v)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "PAGE\tPSID\tSTATE\tOWNER\tEXPIRES\tLAST USER MESSAGE")
	}
	for {
		var res struct {
			Threads    []api.ThreadView `json:"threads"`
			NextCursor string           `json:"next_cursor"`
		}
		if err := get("/admin/threads?"+q.Encode(), &res); err != nil {
			return err
		}
		for _, th := range res.Threads {
			if *asJSON {
				_ = printJSON(stdout, th)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", th.PageID, th.PSID, th.State, dash(th.Owner), ts(th.ExpiresAt), ts(th.LastUserMessageAt))
		}
		if res.NextCursor == "" {
			break
		}
		q.Set("cursor", res.NextCursor)
	}
	return tw.Flush()
}

func printThread(w io.Writer, th api.ThreadView) {
	fmt.Fprintf(w, "thread %s/%s\n  state   %s\n  owner   %s %s\n  expires %s\n  last user message %s\n", th.PageID, th.PSID, th.State, dash(th.Owner), th.OwnerAppID, ts(th.ExpiresAt), ts(th.LastUserMessageAt))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(th.Pending) > 0 {
		// The rules' timers: what will happen to the thread, and when.
		fmt.Fprintln(tw, "pending:")
		for _, j := range th.Pending {
			retry := ""
			if j.Attempts > 0 {
				retry = fmt.Sprintf("(after %d failed attempts)", j.Attempts)
			}
			fmt.Fprintf(tw, "  %s\t%s\t-> %s\t%s\t%s\n", j.At.Format(time.RFC3339), j.Rule, dash(j.Target), j.Reason, retry)
		}
		tw.Flush()
	}
	if len(th.History) == 0 {
		return
	}
	fmt.Fprintln(w, "history:")
	for _, h := range th.History {
		fmt.Fprintf(tw, "  %s\t%s\t%s -> %s\tby %s\t(%s)\t%s\n", h.At.Format(time.RFC3339), h.Event, dash(h.From), dash(h.To), h.By, h.Cause, h.Metadata)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ts(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
