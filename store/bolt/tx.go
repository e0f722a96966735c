package bolt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt/layout"
)

// tx implements store.Tx over one bbolt transaction. Values are copied out
// by unmarshal before the transaction ends. It caches decoded threads
// and dedup day buckets for the life of the transaction: a group commit
// runs many callers' writes in one.
type tx struct {
	outboxOps
	laneOps
	t       *bolt.Tx
	threads map[string]store.Thread
	days    map[int64]*seenDay // by UTC day since 1970
	// pending are the changes to the pending counts per app, written
	// once per transaction by flush.
	pending map[string]int64
}

func newTx(t *bolt.Tx) *tx {
	x := &tx{t: t}
	x.outboxOps, x.laneOps = outboxOps{x}, laneOps{x}
	return x
}

func (x *tx) b(name []byte) *bolt.Bucket { return x.t.Bucket(name) }

// AfterCommit runs fn after bbolt committed, before the group's callers
// are released; a group that rolls back drops it with the rest.
func (x *tx) AfterCommit(fn func()) { x.t.OnCommit(fn) }

// Records are JSON written by encoding/json and read by encoding/json/v2
// (from its module) under encoding/json's semantics: reading a thread
// costs a third less (BenchmarkThreadRead); v2 writes these small records
// no faster.
var jsonOptions = jsonv1.DefaultOptionsV1()

func unmarshal(raw []byte, v any) error { return jsonv2.Unmarshal(raw, v, jsonOptions) }

func get[T any](b *bolt.Bucket, key []byte) (T, error) {
	var v T
	raw := b.Get(key)
	if raw == nil {
		return v, store.ErrNotFound
	}
	if err := unmarshal(raw, &v); err != nil {
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

// putThreadRecord and putDeliveryRecord encode by hand (layout/records.go).
func putThreadRecord(b *bolt.Bucket, key []byte, t *store.Thread) error {
	raw, err := layout.EncodeThread(t)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func putDeliveryRecord(b *bolt.Bucket, key []byte, d store.Delivery) error {
	raw, err := layout.EncodeDelivery(&d)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func (x *tx) Thread(k store.ThreadKey) (store.Thread, error) {
	key := layout.ThreadKey(k)
	if t, ok := x.threads[string(key)]; ok {
		return t, nil
	}
	raw := x.b(layout.Threads).Get(key)
	if raw == nil {
		return store.Thread{}, store.ErrNotFound
	}
	t, err := layout.DecodeThread(raw)
	if err != nil {
		return t, fmt.Errorf("decode %s: %w", x.t.DB().Path(), err)
	}
	x.cacheThread(key, t)
	return t, nil
}

func (x *tx) cacheThread(key []byte, t store.Thread) {
	if x.threads == nil {
		x.threads = map[string]store.Thread{}
	}
	x.threads[string(key)] = t
}

func (x *tx) PutThread(t store.Thread) error {
	key := layout.ThreadKey(t.ThreadKey)
	old, err := x.Thread(t.ThreadKey)
	isNew := err == store.ErrNotFound
	if err != nil && !isNew {
		return err
	}
	if isNew || old.State != t.State {
		if !isNew {
			if err := x.count(string(old.State), -1); err != nil {
				return err
			}
		}
		if err := x.count(string(t.State), 1); err != nil {
			return err
		}
	}
	t.TimerAt = old.TimerAt
	switch needs := t.Owner != "" && !t.ExpiresAt.IsZero(); {
	case needs && (t.TimerAt.IsZero() || t.ExpiresAt.Before(t.TimerAt)):
		if err := x.setTimer(key, &t, t.ExpiresAt); err != nil {
			return err
		}
	case !needs && !t.TimerAt.IsZero():
		if err := x.setTimer(key, &t, time.Time{}); err != nil {
			return err
		}
	}
	if err := putThreadRecord(x.b(layout.Threads), key, &t); err != nil {
		return err
	}
	x.cacheThread(key, t)
	return nil
}

// setTimer moves the thread's timer entry to at (zero: none).
func (x *tx) setTimer(key []byte, t *store.Thread, at time.Time) error {
	timers := x.b(layout.Timers)
	if !t.TimerAt.IsZero() {
		if err := timers.Delete(append(layout.TimeKey(t.TimerAt), key...)); err != nil {
			return err
		}
	}
	t.TimerAt = at
	if at.IsZero() {
		return nil
	}
	return timers.Put(append(layout.TimeKey(at), key...), nil)
}

func (x *tx) RearmTimer(k store.ThreadKey) error {
	t, err := x.Thread(k)
	if err != nil {
		return err
	}
	at := t.ExpiresAt
	if t.Owner == "" {
		at = time.Time{}
	}
	key := layout.ThreadKey(k)
	if err := x.setTimer(key, &t, at); err != nil {
		return err
	}
	if err := putThreadRecord(x.b(layout.Threads), key, &t); err != nil {
		return err
	}
	x.cacheThread(key, t)
	return nil
}

func (x *tx) Threads(f store.ThreadFilter) ([]store.Thread, string, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	c := x.b(layout.Threads).Cursor()
	var prefix []byte
	if f.Page != "" {
		prefix = append([]byte(f.Page), 0)
	}
	var k, v []byte
	if f.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		switch {
		case err != nil:
			return nil, "", fmt.Errorf("%w: %w", store.ErrInvalidCursor, err)
		case bytes.IndexByte(after, 0) < 0:
			return nil, "", fmt.Errorf("%w: not a thread key", store.ErrInvalidCursor)
		case !bytes.HasPrefix(after, prefix):
			return nil, "", fmt.Errorf("%w: not from a listing of page %s", store.ErrInvalidCursor, f.Page)
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
		t, err := layout.DecodeThread(v)
		if err != nil {
			return nil, "", err
		}
		if (f.State != "" && string(t.State) != f.State) || !f.OwnerMatches(t.Owner) {
			continue
		}
		if len(out) == f.Limit {
			return out, base64.RawURLEncoding.EncodeToString(layout.ThreadKey(out[len(out)-1].ThreadKey)), nil
		}
		out = append(out, t)
	}
	return out, "", nil
}

// count keeps the number of threads per state in the meta bucket, so
// that metrics never scan the threads.
func (x *tx) count(state string, delta int64) error {
	meta := x.b(layout.Meta)
	key := []byte("count:" + state)
	var n int64
	if v := meta.Get(key); v != nil {
		n = int64(binary.BigEndian.Uint64(v))
	}
	return meta.Put(key, layout.U64(uint64(n+delta)))
}

func (x *tx) CountThreads() (map[string]int, error) {
	out := map[string]int{}
	c := x.b(layout.Meta).Cursor()
	prefix := []byte("count:")
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if n := int(int64(binary.BigEndian.Uint64(v))); n != 0 {
			out[string(k[len(prefix):])] = n
		}
	}
	return out, nil
}

func (x *tx) AppendHistory(k store.ThreadKey, h store.HistoryEntry) error {
	b := x.b(layout.History)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	return put(b, append(layout.HistoryPrefix(k), layout.U64(seq)...), h)
}

func (x *tx) History(k store.ThreadKey) ([]store.HistoryEntry, error) {
	prefix := layout.HistoryPrefix(k)
	c := x.b(layout.History).Cursor()
	var out []store.HistoryEntry
	for key, v := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, v = c.Next() {
		var h store.HistoryEntry
		if err := unmarshal(v, &h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func list[T any](b *bolt.Bucket, limit int) ([]T, error) {
	var out []T
	err := b.ForEach(func(_, v []byte) error {
		if limit > 0 && len(out) >= limit {
			return errStop
		}
		var t T
		if err := unmarshal(v, &t); err != nil {
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

func (x *tx) PutIntent(i store.Intent) error {
	return put(x.b(layout.Intents), layout.ThreadKey(i.ThreadKey), i)
}

func (x *tx) DeleteIntent(k store.ThreadKey) error {
	return x.b(layout.Intents).Delete(layout.ThreadKey(k))
}

func (x *tx) OneTimeToken(token string) (store.OneTimeToken, error) {
	return get[store.OneTimeToken](x.b(layout.OTN), []byte(token))
}

func (x *tx) PutOneTimeToken(t store.OneTimeToken) error {
	return put(x.b(layout.OTN), []byte(t.Token), t)
}

func (x *tx) Intent(k store.ThreadKey) (store.Intent, error) {
	return get[store.Intent](x.b(layout.Intents), layout.ThreadKey(k))
}

func (x *tx) Intents() ([]store.Intent, error) { return list[store.Intent](x.b(layout.Intents), 0) }

func (x *tx) DueTimers(now time.Time, limit int) ([]store.ThreadKey, error) {
	c := x.b(layout.Timers).Cursor()
	end := layout.TimeKey(now)
	var out []store.ThreadKey
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) <= 0 && len(out) < limit; k, _ = c.Next() {
		out = append(out, layout.SplitThreadKey(k[8:]))
	}
	return out, nil
}

func (x *tx) NextTimer() (time.Time, bool, error) {
	k, _ := x.b(layout.Timers).Cursor().First()
	if k == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), true, nil
}
