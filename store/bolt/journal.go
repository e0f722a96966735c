package bolt

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/batonhq/baton/store"
)

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

func (x *tx) Journal(after uint64, limit int) ([]store.JournalEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []store.JournalEntry
	c := x.b(bJournal).Cursor()
	for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		h, ev, err := splitJournal(seq, v)
		if err != nil {
			return nil, err
		}
		var j store.JournalEntry
		if err := unmarshal(h, &j); err != nil {
			return nil, fmt.Errorf("journal entry %d: %w", seq, err)
		}
		j.Seq, j.Event = seq, append(json.RawMessage(nil), ev...)
		out = append(out, j)
	}
	return out, nil
}
