package bolt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/store"
)

// tx implements store.Tx over one bbolt transaction. Values are copied out
// by unmarshal before the transaction ends. It caches decoded threads
// and dedup day buckets for the life of the transaction: a group commit
// runs many callers' writes in one.
type tx struct {
	t       *bolt.Tx
	threads map[string]store.Thread
	days    map[string]*bolt.Bucket
}

func newTx(t *bolt.Tx) *tx { return &tx{t: t} }

func (x *tx) b(name []byte) *bolt.Bucket { return x.t.Bucket(name) }

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

func (x *tx) Thread(k store.ThreadKey) (store.Thread, error) {
	key := threadKey(k)
	if t, ok := x.threads[string(key)]; ok {
		return t, nil
	}
	t, err := get[store.Thread](x.b(bThreads), key)
	if err == nil {
		x.cacheThread(key, t)
	}
	return t, err
}

func (x *tx) cacheThread(key []byte, t store.Thread) {
	if x.threads == nil {
		x.threads = map[string]store.Thread{}
	}
	x.threads[string(key)] = t
}

func (x *tx) PutThread(t store.Thread) error {
	key := threadKey(t.ThreadKey)
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
	if err := put(x.b(bThreads), key, t); err != nil {
		return err
	}
	x.cacheThread(key, t)
	return nil
}

// setTimer moves the thread's timer entry to at (zero: none).
func (x *tx) setTimer(key []byte, t *store.Thread, at time.Time) error {
	timers := x.b(bTimers)
	if !t.TimerAt.IsZero() {
		if err := timers.Delete(append(timeKey(t.TimerAt), key...)); err != nil {
			return err
		}
	}
	t.TimerAt = at
	if at.IsZero() {
		return nil
	}
	return timers.Put(append(timeKey(at), key...), nil)
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
	key := threadKey(k)
	if err := x.setTimer(key, &t, at); err != nil {
		return err
	}
	if err := put(x.b(bThreads), key, t); err != nil {
		return err
	}
	x.cacheThread(key, t)
	return nil
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
		var t store.Thread
		if err := unmarshal(v, &t); err != nil {
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
		if err := unmarshal(v, &h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

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
const timeOrdered = "t:"

func dayName(t time.Time) string { return t.UTC().Format("20060102") }

func markKey(key string, at time.Time) []byte {
	ms := uint64(max(at.UnixMilli(), 0)) // the zero time is before 1970: 0
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), ms), key...)
}

func (x *tx) MarkSeen(key string, at, now time.Time, window time.Duration) (bool, error) {
	k := markKey(key, at)
	for d := now.Add(-window); !d.After(now.Add(24 * time.Hour)); d = d.Add(24 * time.Hour) {
		if day := x.day(timeOrdered+dayName(d), false); day != nil && day.Get(k) != nil {
			return false, nil
		}
		if day := x.day(dayName(d), false); day != nil && day.Get([]byte(key)) != nil {
			return false, nil
		}
	}
	day := x.day(timeOrdered+dayName(now), true)
	if day == nil {
		return false, fmt.Errorf("create dedup bucket for %s", dayName(now))
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
	seen := x.b(bSeen)
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
	seen := x.b(bSeen)
	keep := dayName(now.Add(-window - 24*time.Hour)) // days after this one may hold live marks
	var old [][]byte
	c := seen.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		date, _ := strings.CutPrefix(string(k), timeOrdered)
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

// appendOnly is the fill of buckets whose keys only grow (journal, outbox):
// bbolt splits a full page at half by default, which leaves every page
// behind the last one half empty when nothing is ever inserted before it.
const appendOnly = 1.0

// Journal values are a JSON header and the raw event after it, so that the
// event's bytes are stored as received, never re-encoded:
// [4-byte header length][header][event].
func (x *tx) AppendJournal(j *store.JournalEntry) error {
	b := x.b(bJournal)
	b.FillPercent = appendOnly
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	j.Seq = seq
	hdr := *j
	hdr.Event = nil
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	v := make([]byte, 4, 4+len(h)+len(j.Event))
	binary.BigEndian.PutUint32(v, uint32(len(h)))
	v = append(append(v, h...), j.Event...)
	return b.Put(u64(seq), v)
}

func (x *tx) PruneJournal(before time.Time, limit int) (int, error) {
	keep, err := x.oldestSharedEvent()
	if err != nil {
		return 0, err
	}
	j := x.b(bJournal)
	var old [][]byte
	c := j.Cursor()
	for k, v := c.First(); k != nil && len(old) < limit; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		if seq >= keep {
			break
		}
		h, _, err := splitJournal(seq, v)
		if err != nil {
			return 0, err
		}
		var hdr struct {
			ReceivedAt time.Time `json:"received_at"`
		}
		if err := unmarshal(h, &hdr); err != nil {
			return 0, fmt.Errorf("journal entry %d: %w", seq, err)
		}
		if !hdr.ReceivedAt.Before(before) {
			break // entries are in the order received
		}
		old = append(old, k)
	}
	// Keys are deleted after the walk: a bbolt cursor may skip a key when
	// the one under it is deleted.
	for _, k := range old {
		if err := j.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

// oldestSharedEvent is the lowest journal seq a delivery reads its event
// from, or the largest seq when none does. Deliveries that share an event
// were enqueued with it, in journal order, so the first such one in the
// outbox has it; dead letters keep their own copy, except those a version
// before that wrote.
func (x *tx) oldestSharedEvent() (uint64, error) {
	keep := uint64(math.MaxUint64)
	var probe struct {
		JournalSeq  uint64 `json:"journal_seq"`
		SharesEvent bool   `json:"shares_event"`
	}
	c := x.b(bOutbox).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		probe.JournalSeq, probe.SharesEvent = 0, false
		if err := unmarshal(v, &probe); err != nil {
			return 0, fmt.Errorf("delivery %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if probe.SharesEvent && probe.JournalSeq != 0 {
			keep = probe.JournalSeq
			break
		}
	}
	err := x.b(bDead).ForEach(func(k, v []byte) error {
		probe.JournalSeq, probe.SharesEvent = 0, false
		if err := unmarshal(v, &probe); err != nil {
			return fmt.Errorf("dead delivery %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if probe.SharesEvent && probe.JournalSeq != 0 {
			keep = min(keep, probe.JournalSeq)
		}
		return nil
	})
	return keep, err
}

// journalEvent returns a copy of the event bytes of journal entry seq.
func (x *tx) journalEvent(seq uint64) (json.RawMessage, error) {
	v := x.b(bJournal).Get(u64(seq))
	if v == nil {
		return nil, fmt.Errorf("journal entry %d: %w", seq, store.ErrNotFound)
	}
	_, ev, err := splitJournal(seq, v)
	return append(json.RawMessage(nil), ev...), err
}

// splitJournal splits journal entry seq's value into its JSON header and
// the event's bytes (see AppendJournal); both alias v.
func splitJournal(seq uint64, v []byte) (hdr, event []byte, err error) {
	if len(v) < 4 || int(binary.BigEndian.Uint32(v)) > len(v)-4 {
		return nil, nil, fmt.Errorf("journal entry %d is damaged", seq)
	}
	n := 4 + int(binary.BigEndian.Uint32(v))
	return v[4:n], v[n:], nil
}

// stored is how a delivery is written: without the event when the journal
// has the same bytes.
func stored(d store.Delivery) store.Delivery {
	if d.SharesEvent && d.JournalSeq != 0 {
		d.Event = nil
	}
	return d
}

// withEvent fills the event back in from the journal.
func (x *tx) withEvent(d store.Delivery) (store.Delivery, error) {
	if d.Event != nil || !d.SharesEvent {
		return d, nil
	}
	ev, err := x.journalEvent(d.JournalSeq)
	d.Event = ev
	return d, err
}

func (x *tx) Enqueue(d *store.Delivery) error {
	// The outbox's own sequence: ids stay unique as deliveries move to the
	// dead letters and back.
	seq, err := x.b(bOutbox).NextSequence()
	if err != nil {
		return err
	}
	d.ID = seq
	d.Status = store.DeliveryPending
	x.b(bOutbox).FillPercent = appendOnly
	return put(x.b(bOutbox), u64(seq), stored(*d))
}

func (x *tx) Delivery(id uint64) (store.Delivery, error) {
	d, err := get[store.Delivery](x.b(bOutbox), u64(id))
	if err == store.ErrNotFound {
		d, err = get[store.Delivery](x.b(bDead), u64(id))
	}
	if err != nil {
		return d, err
	}
	return x.withEvent(d)
}

func (x *tx) UpdateDelivery(d store.Delivery) error {
	if x.b(bOutbox).Get(u64(d.ID)) == nil {
		return fmt.Errorf("delivery %d: %w", d.ID, store.ErrNotFound)
	}
	return put(x.b(bOutbox), u64(d.ID), stored(d))
}

func (x *tx) DeleteDelivery(id uint64) error { return x.b(bOutbox).Delete(u64(id)) }

func (x *tx) KillDelivery(d store.Delivery) error {
	if err := x.b(bOutbox).Delete(u64(d.ID)); err != nil {
		return err
	}
	d, err := x.withEvent(d)
	if err != nil {
		return err
	}
	d.Status, d.SharesEvent = store.DeliveryDead, false
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
	if err := put(x.b(bOutbox), u64(id), d); err != nil {
		return d, err
	}
	return x.withEvent(d)
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

func (x *tx) PendingDeliveries() ([]store.Delivery, error) {
	return x.deliveries(bOutbox, 0)
}

func (x *tx) DeadDeliveries(limit int) ([]store.Delivery, error) {
	return x.deliveries(bDead, limit)
}

func (x *tx) deliveries(bucket []byte, limit int) ([]store.Delivery, error) {
	ds, err := list[store.Delivery](x.b(bucket), limit)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		if ds[i], err = x.withEvent(ds[i]); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func (x *tx) PutIntent(i store.Intent) error {
	return put(x.b(bIntents), threadKey(i.ThreadKey), i)
}

func (x *tx) DeleteIntent(k store.ThreadKey) error { return x.b(bIntents).Delete(threadKey(k)) }

func (x *tx) OneTimeToken(token string) (store.OneTimeToken, error) {
	return get[store.OneTimeToken](x.b(bOTN), []byte(token))
}

func (x *tx) PutOneTimeToken(t store.OneTimeToken) error {
	return put(x.b(bOTN), []byte(t.Token), t)
}

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
