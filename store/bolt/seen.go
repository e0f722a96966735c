package bolt

import (
	"fmt"
	"strings"
	"time"

	"github.com/batonhq/baton/store/bolt/layout"
	bolt "go.etcd.io/bbolt"
)

// Dedup marks live in one nested bucket per UTC day of their creation:
// a mark costs one write, a lookup reads the few days a window spans, and
// forgetting old marks drops whole days instead of scanning keys.
//
// Within a day a mark's key is the event's own time (8 bytes, big-endian
// milliseconds) and then the caller's key. Meta's message ids are random:
// keyed by them alone, every mark of a write group landed on its own leaf
// page, which bbolt then read in whole, grew and wrote back, a third of a
// commit's pages. Keyed by time, a group's marks share the B+tree's last
// pages. Day buckets of that layout are named "t:" and the date; a bucket
// named by the date alone holds marks of the earlier layout (the key
// alone), still read until the sweep drops it.

func (x *tx) MarkSeen(key string, at, now time.Time, window time.Duration) (bool, error) {
	k := layout.MarkKey(key, at)
	for d := now.Add(-window); !d.After(now.Add(24 * time.Hour)); d = d.Add(24 * time.Hour) {
		day := x.day(d)
		if day.ordered != nil && day.ordered.Get(k) != nil {
			return false, nil
		}
		if day.legacy != nil && day.legacy.Get([]byte(key)) != nil {
			return false, nil
		}
	}
	day := x.day(now)
	if day.ordered == nil {
		var err error
		if day.ordered, err = x.b(layout.Seen).CreateBucket([]byte(layout.TimeOrdered + layout.DayName(now))); err != nil {
			return false, fmt.Errorf("create dedup bucket for %s: %w", layout.DayName(now), err)
		}
	}
	// Marks arrive in about time order: full pages split where they end.
	day.ordered.FillPercent = 0.9
	return true, day.ordered.Put(k, []byte{})
}

// seenDay is one UTC day's buckets of dedup marks, nil where the file
// has none.
type seenDay struct{ ordered, legacy *bolt.Bucket }

// day returns the buckets of t's UTC day. They are looked up once per
// transaction, missing ones too: MarkSeen looks up the same few days for
// every event of a group, twice each, and naming a day (a date format and
// a concatenation) cost more than the lookup.
func (x *tx) day(t time.Time) *seenDay {
	n := layout.Day(t)
	if d, ok := x.days[n]; ok {
		return d
	}
	seen := x.b(layout.Seen)
	date := layout.DayName(t)
	d := &seenDay{ordered: seen.Bucket([]byte(layout.TimeOrdered + date)), legacy: seen.Bucket([]byte(date))}
	if x.days == nil {
		x.days = map[int64]*seenDay{}
	}
	x.days[n] = d
	return d
}

func (x *tx) SweepSeen(now time.Time, window time.Duration) (int, error) {
	seen := x.b(layout.Seen)
	keep := layout.DayName(now.Add(-window - 24*time.Hour)) // days after this one may hold live marks
	var old [][]byte
	c := seen.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		date, _ := strings.CutPrefix(string(k), layout.TimeOrdered)
		if v == nil && date < keep { // a nested bucket of an old day
			old = append(old, append([]byte(nil), k...))
		}
	}
	for _, k := range old {
		if err := seen.DeleteBucket(k); err != nil {
			return 0, err
		}
	}
	clear(x.days) // found again when asked for
	return len(old), nil
}
