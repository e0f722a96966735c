package bolt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/store"
)

// tx implements store.Tx over one bbolt transaction. Values are copied out
// by json.Unmarshal before the transaction ends.
type tx struct{ t *bolt.Tx }

func (x *tx) b(name []byte) *bolt.Bucket { return x.t.Bucket(name) }

func get[T any](b *bolt.Bucket, key []byte) (T, error) {
	var v T
	raw := b.Get(key)
	if raw == nil {
		return v, store.ErrNotFound
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %s: %w", b.Tx().DB().Path(), err)
	}
	return v, nil
}

func put(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func (x *tx) Thread(k store.ThreadKey) (store.Thread, error) {
	return get[store.Thread](x.b(bThreads), threadKey(k))
}

func (x *tx) PutThread(t store.Thread) error {
	key := threadKey(t.ThreadKey)
	timers := x.b(bTimers)
	old, err := x.Thread(t.ThreadKey)
	switch {
	case err == nil:
		if !old.ExpiresAt.IsZero() {
			if err := timers.Delete(append(timeKey(old.ExpiresAt), key...)); err != nil {
				return err
			}
		}
		if err := x.count(string(old.State), -1); err != nil {
			return err
		}
	case err != store.ErrNotFound:
		return err
	}
	if err := x.count(string(t.State), 1); err != nil {
		return err
	}
	if t.Owner != "" && !t.ExpiresAt.IsZero() {
		if err := timers.Put(append(timeKey(t.ExpiresAt), key...), nil); err != nil {
			return err
		}
	}
	return put(x.b(bThreads), key, t)
}

func (x *tx) Threads(f store.ThreadFilter) ([]store.Thread, string, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	c := x.b(bThreads).Cursor()
	var prefix []byte
	if f.Page != "" {
		prefix = append([]byte(f.Page), 0)
	}
	var k, v []byte
	if f.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("bad cursor: %w", err)
		}
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	} else {
		k, v = c.Seek(prefix)
	}
	var out []store.Thread
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var t store.Thread
		if err := json.Unmarshal(v, &t); err != nil {
			return nil, "", err
		}
		if (f.State != "" && string(t.State) != f.State) || !ownerMatches(f.Owner, t.Owner) {
			continue
		}
		if len(out) == f.Limit {
			return out, base64.RawURLEncoding.EncodeToString(threadKey(out[len(out)-1].ThreadKey)), nil
		}
		out = append(out, t)
	}
	return out, "", nil
}

func ownerMatches(filter, owner string) bool {
	switch filter {
	case "":
		return true
	case "idle":
		return owner == ""
	}
	return filter == owner
}

// count keeps the number of threads per state in the meta bucket, so
// that metrics never scan the threads.
func (x *tx) count(state string, delta int64) error {
	meta := x.b(bMeta)
	key := []byte("count:" + state)
	var n int64
	if v := meta.Get(key); v != nil {
		n = int64(binary.BigEndian.Uint64(v))
	}
	return meta.Put(key, u64(uint64(n+delta)))
}

func (x *tx) CountThreads() (map[string]int, error) {
	out := map[string]int{}
	c := x.b(bMeta).Cursor()
	prefix := []byte("count:")
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if n := int(int64(binary.BigEndian.Uint64(v))); n != 0 {
			out[string(k[len(prefix):])] = n
		}
	}
	return out, nil
}

func historyPrefix(k store.ThreadKey) []byte { return append(threadKey(k), 0) }

func (x *tx) AppendHistory(k store.ThreadKey, h store.HistoryEntry) error {
	b := x.b(bHistory)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	return put(b, append(historyPrefix(k), u64(seq)...), h)
}

func (x *tx) History(k store.ThreadKey) ([]store.HistoryEntry, error) {
	prefix := historyPrefix(k)
	c := x.b(bHistory).Cursor()
	var out []store.HistoryEntry
	for key, v := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, v = c.Next() {
		var h store.HistoryEntry
		if err := json.Unmarshal(v, &h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func (x *tx) MarkSeen(key string, now, until time.Time) (bool, error) {
	seen, exp := x.b(bSeen), x.b(bSeenExp)
	if old := seen.Get([]byte(key)); old != nil {
		oldUntil := time.Unix(0, int64(binary.BigEndian.Uint64(old)))
		if now.Before(oldUntil) {
			return false, nil
		}
		if err := exp.Delete(append(timeKey(oldUntil), key...)); err != nil {
			return false, err
		}
	}
	if err := seen.Put([]byte(key), timeKey(until)); err != nil {
		return false, err
	}
	return true, exp.Put(append(timeKey(until), key...), nil)
}

func (x *tx) SweepSeen(now time.Time, limit int) (int, error) {
	seen, exp := x.b(bSeen), x.b(bSeenExp)
	c := exp.Cursor()
	limitKey := timeKey(now)
	n := 0
	for k, _ := c.First(); k != nil && n < limit && bytes.Compare(k[:8], limitKey) <= 0; k, _ = c.First() {
		if err := seen.Delete(k[8:]); err != nil {
			return n, err
		}
		if err := exp.Delete(k); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (x *tx) AppendJournal(j *store.JournalEntry) error {
	b := x.b(bJournal)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	j.Seq = seq
	return put(b, u64(seq), j)
}

func (x *tx) Enqueue(d *store.Delivery) error {
	meta := x.b(bMeta)
	var seq uint64
	if v := meta.Get(kDelivery); v != nil {
		seq = binary.BigEndian.Uint64(v)
	}
	seq++
	if err := meta.Put(kDelivery, u64(seq)); err != nil {
		return err
	}
	d.ID = seq
	d.Status = store.DeliveryPending
	return put(x.b(bOutbox), u64(seq), d)
}

func (x *tx) Delivery(id uint64) (store.Delivery, error) {
	d, err := get[store.Delivery](x.b(bOutbox), u64(id))
	if err == store.ErrNotFound {
		return get[store.Delivery](x.b(bDead), u64(id))
	}
	return d, err
}

func (x *tx) UpdateDelivery(d store.Delivery) error {
	if x.b(bOutbox).Get(u64(d.ID)) == nil {
		return fmt.Errorf("delivery %d: %w", d.ID, store.ErrNotFound)
	}
	return put(x.b(bOutbox), u64(d.ID), d)
}

func (x *tx) DeleteDelivery(id uint64) error { return x.b(bOutbox).Delete(u64(id)) }

func (x *tx) KillDelivery(d store.Delivery) error {
	if err := x.b(bOutbox).Delete(u64(d.ID)); err != nil {
		return err
	}
	d.Status = store.DeliveryDead
	return put(x.b(bDead), u64(d.ID), d)
}

func (x *tx) ReviveDelivery(id uint64, now time.Time) (store.Delivery, error) {
	d, err := get[store.Delivery](x.b(bDead), u64(id))
	if err != nil {
		return d, fmt.Errorf("dead delivery %d: %w", id, err)
	}
	if err := x.b(bDead).Delete(u64(id)); err != nil {
		return d, err
	}
	d.Status, d.Attempts, d.NextAttempt, d.DeadAt = store.DeliveryPending, 0, now, time.Time{}
	return d, put(x.b(bOutbox), u64(id), d)
}

func list[T any](b *bolt.Bucket, limit int) ([]T, error) {
	var out []T
	err := b.ForEach(func(_, v []byte) error {
		if limit > 0 && len(out) >= limit {
			return errStop
		}
		var t T
		if err := json.Unmarshal(v, &t); err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	if err == errStop {
		err = nil
	}
	return out, err
}

func (x *tx) PendingDeliveries() ([]store.Delivery, error) {
	return list[store.Delivery](x.b(bOutbox), 0)
}

func (x *tx) DeadDeliveries(limit int) ([]store.Delivery, error) {
	return list[store.Delivery](x.b(bDead), limit)
}

func (x *tx) PutIntent(i store.Intent) error {
	return put(x.b(bIntents), threadKey(i.ThreadKey), i)
}

func (x *tx) DeleteIntent(k store.ThreadKey) error { return x.b(bIntents).Delete(threadKey(k)) }

func (x *tx) Intent(k store.ThreadKey) (store.Intent, error) {
	return get[store.Intent](x.b(bIntents), threadKey(k))
}

func (x *tx) Intents() ([]store.Intent, error) { return list[store.Intent](x.b(bIntents), 0) }

func (x *tx) DueTimers(now time.Time, limit int) ([]store.ThreadKey, error) {
	c := x.b(bTimers).Cursor()
	end := timeKey(now)
	var out []store.ThreadKey
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) <= 0 && len(out) < limit; k, _ = c.Next() {
		out = append(out, splitThreadKey(k[8:]))
	}
	return out, nil
}

func (x *tx) NextTimer() (time.Time, bool, error) {
	k, _ := x.b(bTimers).Cursor().First()
	if k == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), true, nil
}
