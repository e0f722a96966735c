package bolt

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/batonhq/baton/store"
)

// Jobs are kept twice: by rule and thread (one per pair, for lookups and
// for listing one rule's jobs) and by time (for the timer loop).

func jobKey(k store.ThreadKey, rule string) []byte {
	b := make([]byte, 0, len(rule)+1+len(k.Page)+1+len(k.PSID))
	b = append(b, rule...)
	b = append(b, 0)
	return append(b, threadKey(k)...)
}

func (x *tx) Job(k store.ThreadKey, rule string) (store.Job, error) {
	return get[store.Job](x.b(bJobs), jobKey(k, rule))
}

func (x *tx) Jobs(rule string) ([]store.Job, error) {
	prefix := append([]byte(rule), 0)
	var out []store.Job
	c := x.b(bJobs).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		j, err := get[store.Job](x.b(bJobs), k)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

func (x *tx) PutJob(j store.Job) error {
	key := jobKey(j.ThreadKey, j.Rule)
	if err := x.DeleteJob(j.ThreadKey, j.Rule); err != nil {
		return err
	}
	if err := put(x.b(bJobs), key, j); err != nil {
		return err
	}
	return x.b(bJobTimes).Put(append(timeKey(j.At), key...), nil)
}

func (x *tx) DeleteJob(k store.ThreadKey, rule string) error {
	key := jobKey(k, rule)
	old, err := get[store.Job](x.b(bJobs), key)
	if err == store.ErrNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if err := x.b(bJobTimes).Delete(append(timeKey(old.At), key...)); err != nil {
		return err
	}
	return x.b(bJobs).Delete(key)
}

func (x *tx) DueJobs(now time.Time, limit int) ([]store.Job, error) {
	c := x.b(bJobTimes).Cursor()
	end := timeKey(now)
	var out []store.Job
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) <= 0 && len(out) < limit; k, _ = c.Next() {
		j, err := get[store.Job](x.b(bJobs), k[8:])
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

func (x *tx) NextJob() (time.Time, bool, error) {
	k, _ := x.b(bJobTimes).Cursor().First()
	if k == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), true, nil
}
