package layout

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/batonhq/baton/store"
)

// A journal entry's value is a JSON header and the raw event after it, so
// that the event's bytes are stored as received, never re-encoded:
// [4-byte header length][header][event] (SplitJournal).

// JournalValue is journal entry j's value: one buffer, the length, the
// header written in place, the event.
func JournalValue(j *store.JournalEntry) ([]byte, error) {
	v, err := appendJournalHeader(make([]byte, 4, 4+192+len(j.Event)), j)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(v, uint32(len(v)-4))
	return append(v, j.Event...), nil
}

// ReadJournal reads journal entry seq's value, with a copy of its event.
func ReadJournal(seq uint64, v []byte) (store.JournalEntry, error) {
	var j store.JournalEntry
	h, ev, err := SplitJournal(seq, v)
	if err != nil {
		return j, err
	}
	if err := jsonv2.Unmarshal(h, &j, readOptions); err != nil {
		return j, fmt.Errorf("journal entry %d: %w", seq, err)
	}
	j.Seq, j.Event = seq, append(json.RawMessage(nil), ev...)
	return j, nil
}

// JournalReceivedAt reads when journal entry seq was received, and no
// more of it.
func JournalReceivedAt(seq uint64, v []byte) (time.Time, error) {
	h, _, err := SplitJournal(seq, v)
	if err != nil {
		return time.Time{}, err
	}
	var hdr struct {
		ReceivedAt time.Time `json:"received_at"`
	}
	if err := jsonv2.Unmarshal(h, &hdr, readOptions); err != nil {
		return time.Time{}, fmt.Errorf("journal entry %d: %w", seq, err)
	}
	return hdr.ReceivedAt, nil
}

// appendJournalHeader appends the header of journal entry j, its event
// left out (written as null, as encoding/json writes a nil one).
func appendJournalHeader(b []byte, j *store.JournalEntry) ([]byte, error) {
	w := recordWriter{b: b}
	w.uint(`{"seq":`, j.Seq)
	w.time(`,"received_at":`, j.ReceivedAt)
	w.str(`,"app":`, j.App)
	w.str(`,"page_id":`, j.Page)
	w.str(`,"channel":`, j.Channel)
	w.b = append(w.b, `,"event":null`...)
	return w.end()
}
