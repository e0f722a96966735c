package bolt

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt/layout"
)

// Jobs are kept twice: by rule and thread (one per pair, for lookups and
// for listing one rule's jobs) and by time (for the timer loop).

func (x *tx) Job(k store.ThreadKey, rule string) (store.Job, error) {
	return get[store.Job](x.b(layout.Jobs), layout.JobKey(k, rule))
}

func (x *tx) Jobs(rule string) ([]store.Job, error) {
	prefix := append([]byte(rule), 0)
	var out []store.Job
	c := x.b(layout.Jobs).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		j, err := get[store.Job](x.b(layout.Jobs), k)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

func (x *tx) PutJob(j store.Job) error {
	key := layout.JobKey(j.ThreadKey, j.Rule)
	if err := x.DeleteJob(j.ThreadKey, j.Rule); err != nil {
		return err
	}
	if err := put(x.b(layout.Jobs), key, j); err != nil {
		return err
	}
	return x.b(layout.JobTimes).Put(append(layout.TimeKey(j.At), key...), nil)
}

func (x *tx) DeleteJob(k store.ThreadKey, rule string) error {
	key := layout.JobKey(k, rule)
	old, err := get[store.Job](x.b(layout.Jobs), key)
	if err == store.ErrNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if err := x.b(layout.JobTimes).Delete(append(layout.TimeKey(old.At), key...)); err != nil {
		return err
	}
	return x.b(layout.Jobs).Delete(key)
}

func (x *tx) DueJobs(now time.Time, limit int) ([]store.Job, error) {
	c := x.b(layout.JobTimes).Cursor()
	end := layout.TimeKey(now)
	var out []store.Job
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) <= 0 && len(out) < limit; k, _ = c.Next() {
		j, err := get[store.Job](x.b(layout.Jobs), k[8:])
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

func (x *tx) NextJob() (time.Time, bool, error) {
	k, _ := x.b(layout.JobTimes).Cursor().First()
	if k == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), true, nil
}
