package lab

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StoreStats are a Baton's group commit counters, as its /metrics has
// them: transactions committed, write functions they ran (a webhook's
// acceptance, a routing batch, a delivery's outcome...), and the time in
// the transactions and, of it, in running the writes before the commit.
type StoreStats struct {
	Commits, Writes float64
	Time, Apply     time.Duration
}

// Sub is s less an earlier reading.
func (s StoreStats) Sub(o StoreStats) StoreStats {
	return StoreStats{Commits: s.Commits - o.Commits, Writes: s.Writes - o.Writes, Time: s.Time - o.Time, Apply: s.Apply - o.Apply}
}

// Add is s and t together.
func (s StoreStats) Add(t StoreStats) StoreStats {
	return StoreStats{Commits: s.Commits + t.Commits, Writes: s.Writes + t.Writes, Time: s.Time + t.Time, Apply: s.Apply + t.Apply}
}

// ReadStoreStats reads the counters from GET /metrics of the admin
// listener adm.
func ReadStoreStats(ctx context.Context, adm string) (StoreStats, error) {
	var s StoreStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adm+"/metrics", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("bench: GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("bench: GET /metrics: %s", resp.Status)
	}
	secs := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case "baton_store_commits_total":
			s.Commits = v
		case "baton_store_writes_total":
			s.Writes = v
		case "baton_store_commit_seconds_total":
			s.Time = secs(v)
		case "baton_store_apply_seconds_total":
			s.Apply = secs(v)
		}
	}
	return s, sc.Err()
}
