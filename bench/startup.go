package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/batonhq/baton/bench/lab"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// startup fills a bbolt file with c.Startup threads, then starts Baton on
// it (a separate process) and measures the time to ready, RSS, and admin
// API thread lookups, against the same lookups on a store of 1,000
// threads; each warm, and cold from the disk.
func startup(ctx context.Context, c Config) error {
	l, err := lab.New(c.Executable, "baton-startup-")
	if err != nil {
		return err
	}
	defer l.Close()
	pages := pageIDs(c.Pages)
	var results []startupResult
	for _, count := range []int{1000, c.Startup} {
		data := filepath.Join(l.Dir, fmt.Sprintf("baton-%d.db", count))
		fillStart := time.Now()
		if err := fillStore(ctx, data, pages, count); err != nil {
			return err
		}
		fi, _ := os.Stat(data)
		fmt.Fprintf(c.Stderr, "filled %d threads in %s (%d MiB)\n", count, time.Since(fillStart).Round(time.Millisecond), fi.Size()>>20)
		cfgPath, _, adm, err := lab.WriteConfig(l.Dir, data, pages, lab.Target{BotURL: "http://127.0.0.1:1", Conns: 1})
		if err != nil {
			return err
		}
		for _, cache := range []string{"warm", "cold"} {
			if cache == "cold" {
				if err := lab.DropCache(data); err != nil {
					return err
				}
			}
			r, err := startupOnce(ctx, l, cfgPath, adm, pages, count)
			if err != nil {
				return err
			}
			r.threads, r.cache, r.size = count, cache, fi.Size()
			results = append(results, r)
		}
	}
	startupReport(c.Stdout, results)
	return nil
}

// startupOnce starts Baton on cfgPath, times it to ready, reads 2,000
// threads at random through the admin API and stops it.
func startupOnce(ctx context.Context, l *lab.Lab, cfgPath, adm string, pages []string, count int) (startupResult, error) {
	start := time.Now()
	cmd, err := l.Serve(ctx, cfgPath, adm)
	if err != nil {
		return startupResult{}, err
	}
	defer lab.Stop(cmd)
	ready := time.Since(start)
	st, _ := lab.ReadProc(cmd.Process.Pid)
	client := &http.Client{Timeout: 10 * time.Second}
	var lat []time.Duration
	for i := range 2000 {
		t := (i * 7919) % count
		u := fmt.Sprintf("http://%s/admin/threads/%s/%s", adm, pages[t%len(pages)], PSID(t))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+lab.AdminToken)
		t0 := time.Now()
		resp, err := client.Do(req)
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
	after, _ := lab.ReadProc(cmd.Process.Pid)
	return startupResult{ready: ready, rss: st.RSS, rssLook: after.RSS, anon: after.Anon, lookup: Summarise(lat)}, nil
}

// fillStore creates a bbolt file at path holding n threads.
func fillStore(ctx context.Context, path string, pages []string, n int) error {
	db, err := bolt.Open(path, bolt.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return FillThreads(ctx, db, pages, lab.BotAppID, n, 20000, time.Now())
}

// FillThreads writes n thread records (owned, with an expiry timer, on
// pages of the given ids) and one history entry each, in transactions of
// batch records, as a long-running Baton would have accumulated them.
func FillThreads(ctx context.Context, s store.Store, pages []string, owner string, n, batch int, now time.Time) error {
	for start := 0; start < n; start += batch {
		end := min(n, start+batch)
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := start; i < end; i++ {
				k := store.ThreadKey{Page: pages[i%len(pages)], PSID: PSID(i)}
				th := store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Primary, Owner: owner,
					ExpiresAt: now.Add(24 * time.Hour), LastUserMessageAt: now, Version: 3}, UpdatedAt: now}
				if err := tx.PutThread(th); err != nil {
					return err
				}
				if err := tx.AppendHistory(k, store.HistoryEntry{At: now, Event: "pass_thread_control", To: owner, By: "meta", Cause: store.CauseWebhook}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("fill threads %d-%d: %w", start, end, err)
		}
	}
	return nil
}

// PSID is the person id bench uses for thread i.
func PSID(i int) string { return strconv.Itoa(7_000_000_000_000_000 + i) }
