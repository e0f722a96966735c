package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonhq/baton/store"
)

// Jobs: one row per rule and thread, indexed by time for the timer loop.

func (x *tx) Job(k store.ThreadKey, rule string) (store.Job, error) {
	return record[store.Job](x, "job", `SELECT record FROM baton_jobs WHERE rule = $1 AND page = $2 AND psid = $3`, rule, k.Page, k.PSID)
}

func (x *tx) Jobs(rule string) ([]store.Job, error) {
	args := []any{rule}
	return records[store.Job](x, "jobs", `SELECT record FROM baton_jobs WHERE rule = $1`+x.onlyOwned(&args)+` ORDER BY page, psid`, args...)
}

func (x *tx) PutJob(j store.Job) error {
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	x.write("write job", `INSERT INTO baton_jobs (rule, page, psid, shard, at, record) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (rule, page, psid) DO UPDATE SET at = EXCLUDED.at, record = EXCLUDED.record`,
		j.Rule, j.Page, j.PSID, x.shard(j.ThreadKey), nanos(j.At), raw)
	return nil
}

func (x *tx) DeleteJob(k store.ThreadKey, rule string) error {
	x.shard(k) // a delete writes the thread's rows too
	x.write("delete job", `DELETE FROM baton_jobs WHERE rule = $1 AND page = $2 AND psid = $3`, rule, k.Page, k.PSID)
	return nil
}

func (x *tx) DueJobs(now time.Time, limit int) ([]store.Job, error) {
	args := []any{nanos(now), max(limit, 0)}
	return records[store.Job](x, "due jobs", `SELECT record FROM baton_jobs WHERE at <= $1`+x.onlyOwned(&args)+
		` ORDER BY at, rule, page, psid LIMIT $2`, args...)
}

func (x *tx) NextJob() (time.Time, bool, error) {
	var args []any
	return x.first("next job", `SELECT at FROM baton_jobs WHERE true`+x.onlyOwned(&args)+` ORDER BY at LIMIT 1`, args...)
}

// Dedup marks: a mark is the caller's key and the event's own time, kept
// with the UTC day it was made; a lookup takes the marks made within the
// window, a sweep drops whole days.

// day is t's UTC day, in days since 1970.
func day(t time.Time) int { return int(math.Floor(float64(t.Unix()) / 86400)) }

func (x *tx) MarkSeen(key string, at, now time.Time, window time.Duration) (bool, error) {
	var fresh bool
	err := x.t.QueryRow(x.ctx, `
		WITH live AS (SELECT 1 FROM baton_seen WHERE key = $1 AND at = $2 AND day >= $3)
		INSERT INTO baton_seen (key, at, day) SELECT $1, $2, $4 WHERE NOT EXISTS (SELECT 1 FROM live)
		ON CONFLICT (key, at) DO UPDATE SET day = EXCLUDED.day
		RETURNING true`, key, max(at.UnixMilli(), 0), day(now.Add(-window)), day(now)).Scan(&fresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // a live mark: seen
	}
	if err != nil {
		return false, fmt.Errorf("postgres: mark seen: %w", err)
	}
	return fresh, nil
}

func (x *tx) SweepSeen(now time.Time, window time.Duration) (int, error) {
	// Days after this one may hold live marks (store/bolt's rule).
	keep := day(now.Add(-window - 24*time.Hour))
	var days int
	err := x.t.QueryRow(x.ctx, `WITH gone AS (DELETE FROM baton_seen WHERE day < $1 RETURNING day)
		SELECT count(DISTINCT day) FROM gone`, keep).Scan(&days)
	if err != nil {
		return 0, fmt.Errorf("postgres: sweep seen: %w", err)
	}
	return days, nil
}

func (x *tx) PutDeletion(d store.Deletion) error {
	if d.Code == "" {
		return errors.New("a deletion request needs a code")
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	x.write("write deletion request", `INSERT INTO baton_deletions (code, status, record) VALUES ($1, $2, $3)
		ON CONFLICT (code) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record`, d.Code, d.Status, raw)
	return nil
}

func (x *tx) Deletion(code string) (store.Deletion, error) {
	return record[store.Deletion](x, "deletion request", `SELECT record FROM baton_deletions WHERE code = $1`, code)
}

func (x *tx) Deletions(status string, limit int) ([]store.Deletion, error) {
	if limit <= 0 {
		limit = math.MaxInt32
	}
	return records[store.Deletion](x, "deletion requests", `SELECT record FROM baton_deletions WHERE ($1 = '' OR status = $1)
		ORDER BY code LIMIT $2`, status, limit)
}
