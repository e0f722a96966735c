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
		if day := x.day(layout.TimeOrdered+layout.DayName(d), false); day != nil && day.Get(k) != nil {
			return false, nil
		}
		if day := x.day(layout.DayName(d), false); day != nil && day.Get([]byte(key)) != nil {
			return false, nil
		}
	}
	day := x.day(layout.TimeOrdered+layout.DayName(now), true)
	if day == nil {
		return false, fmt.Errorf("create dedup bucket for %s", layout.DayName(now))
	}
	// Marks arrive in about time order: full pages split where they end.
	day.FillPercent = 0.9
	return true, day.Put(k, []byte{})
}

// day returns the nested bucket of that name, creating it if asked. A
// missing bucket is remembered too: MarkSeen looks up the same few days
// for every event of a group.
func (x *tx) day(name string, create bool) *bolt.Bucket {
	b, known := x.days[name]
	if b != nil || (known && !create) {
		return b
	}
	seen := x.b(layout.Seen)
	b = seen.Bucket([]byte(name))
	if b == nil && create {
		var err error
		if b, err = seen.CreateBucket([]byte(name)); err != nil {
			return nil
		}
	}
	if x.days == nil {
		x.days = map[string]*bolt.Bucket{}
	}
	x.days[name] = b
	return b
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
		delete(x.days, string(k))
	}
	return len(old), nil
}
