package bolt

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt/layout"
)

// appendOnly is the fill of buckets whose keys only grow (journal, outbox):
// bbolt splits a full page at half by default, which leaves every page
// behind the last one half empty when nothing is ever inserted before it.
const appendOnly = 1.0

// Journal values keep the event's bytes as received (layout.JournalValue).
func (x *tx) AppendJournal(j *store.JournalEntry) error {
	b := x.b(layout.Journal)
	b.FillPercent = appendOnly
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	j.Seq = seq
	v, err := layout.JournalValue(j)
	if err != nil {
		return err
	}
	return b.Put(layout.U64(seq), v)
}

func (x *tx) PruneJournal(before time.Time, limit int) (int, error) {
	keep, err := x.oldestSharedEvent()
	if err != nil {
		return 0, err
	}
	j := x.b(layout.Journal)
	var old [][]byte
	c := j.Cursor()
	for k, v := c.First(); k != nil && len(old) < limit; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		if seq >= keep {
			break
		}
		at, err := layout.JournalReceivedAt(seq, v)
		if err != nil {
			return 0, err
		}
		if !at.Before(before) {
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
	c := x.b(layout.Outbox).Cursor()
	for k, v := c.First(); k != nil && keep == math.MaxUint64; k, v = c.Next() {
		seq, err := layout.SharedEventOf(binary.BigEndian.Uint64(k), v)
		if err != nil {
			return 0, err
		}
		if seq != 0 {
			keep = seq
		}
	}
	err := x.b(layout.Dead).ForEach(func(k, v []byte) error {
		seq, err := layout.SharedEventOf(binary.BigEndian.Uint64(k), v)
		if err != nil {
			return fmt.Errorf("dead %w", err) // "dead delivery N: ..."
		}
		if seq != 0 {
			keep = min(keep, seq)
		}
		return nil
	})
	return keep, err
}

// journalEvent returns a copy of the event bytes of journal entry seq.
func (x *tx) journalEvent(seq uint64) (json.RawMessage, error) {
	v := x.b(layout.Journal).Get(layout.U64(seq))
	if v == nil {
		return nil, fmt.Errorf("journal entry %d: %w", seq, store.ErrNotFound)
	}
	_, ev, err := layout.SplitJournal(seq, v)
	return append(json.RawMessage(nil), ev...), err
}

func (x *tx) Journal(after uint64, limit int) ([]store.JournalEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []store.JournalEntry
	c := x.b(layout.Journal).Cursor()
	for k, v := c.Seek(layout.U64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
		j, err := layout.ReadJournal(binary.BigEndian.Uint64(k), v)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}
