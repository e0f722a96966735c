// Package layout is the data file's layout: its buckets, how each keys
// its records, and the format number a binary checks before it writes.
// Keys are built so that byte order is the order Baton reads in (a
// thread's history by sequence, timers and jobs by time, lanes by app then
// thread then id); values are JSON records of the store package. It
// imports no bbolt: it is what a reader of the file, or of a change to
// it, needs to know.
package layout

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/batonhq/baton/store"
)

// Format is the layout this binary writes. A binary refuses a file of a
// later format rather than write into indexes it does not know (an older
// Baton would leave the lane index of a newer one stale, and deliveries
// would wait unseen); a file of an earlier one is brought up to date on
// open. Raise it with each change of layout, with the migration from the
// one before.
//
//	1: the layout of before the stamp, with the lane indexes
//	2: the transcript, its index by seq, and people. From 1 nothing
//	   moves: Open creates the buckets. A binary of format 1 must not
//	   open it: its erase of a person would leave their transcript, and
//	   its ingress would write none.
const Format = 2

// FormatKey holds Format in Meta.
var FormatKey = []byte("format")

// The buckets, each with how it keys its records.
var (
	Threads   = []byte("threads")   // page \0 psid -> Thread
	History   = []byte("history")   // page \0 psid \0 seq -> HistoryEntry
	Timers    = []byte("timers")    // expires(ns) page \0 psid -> nil
	Seen      = []byte("seen")      // "t:"+day -> (event time + key -> empty); see MarkKey
	Journal   = []byte("journal")   // seq -> JournalEntry
	Outbox    = []byte("outbox")    // id -> Delivery
	Dead      = []byte("dead")      // id -> Delivery
	Intents   = []byte("intents")   // page \0 psid -> Intent
	OTN       = []byte("otn")       // token -> OneTimeToken
	Jobs      = []byte("jobs")      // rule \0 page \0 psid -> Job
	JobTimes  = []byte("jobtimes")  // at(ns) rule \0 page \0 psid -> nil
	Lanes     = []byte("lanes")     // app \0 page \0 psid \0 id -> schedule; see store/bolt/lanes.go
	DeadLanes = []byte("deadlanes") // app \0 page \0 psid \0 id -> nil
	Deletions = []byte("deletions") // code -> Deletion (Meta's data deletion requests)
	Meta      = []byte("meta")      // "format", "count:<state>", "pending:<app>" -> uint64
	// The transcript, its index in the order entries were recorded (for
	// retention and search), and what Baton learnt of people.
	Transcript    = []byte("transcript")    // page \0 psid \0 at(ns) seq -> TranscriptEntry
	TranscriptAge = []byte("transcriptage") // seq -> recorded(ns) + transcript key
	People        = []byte("people")        // page \0 psid -> Person

	// Buckets are all of them, created when a file is opened.
	Buckets = [][]byte{Threads, History, Timers, Seen, Journal, Outbox, Dead, Intents, OTN, Jobs, JobTimes, Lanes, DeadLanes, Deletions, Meta,
		Transcript, TranscriptAge, People}
)

// U64 is n big-endian: byte order is numeric order.
func U64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// ThreadKey is page \0 psid.
func ThreadKey(k store.ThreadKey) []byte {
	b := make([]byte, 0, len(k.Page)+len(k.PSID)+1)
	b = append(b, k.Page...)
	b = append(b, 0)
	return append(b, k.PSID...)
}

// SplitThreadKey reads a ThreadKey back.
func SplitThreadKey(b []byte) store.ThreadKey {
	for i, c := range b {
		if c == 0 {
			return store.ThreadKey{Page: string(b[:i]), PSID: string(b[i+1:])}
		}
	}
	return store.ThreadKey{Page: string(b)}
}

// HistoryPrefix is the prefix of a thread's history keys (and of any key
// that starts with the thread and a separator).
func HistoryPrefix(k store.ThreadKey) []byte { return append(ThreadKey(k), 0) }

// TimeKey encodes t so that byte order is time order for the timer and
// job indexes. Times outside what nanoseconds since 1970 hold in an int64
// (before 1970, after 2262) are clamped: an expiry in year 2262 would
// otherwise wrap to the past and be due for ever.
func TimeKey(t time.Time) []byte {
	switch {
	case t.Before(time.Unix(0, 0)):
		return U64(0)
	case t.After(time.Unix(0, math.MaxInt64)):
		return U64(math.MaxInt64)
	}
	return U64(uint64(t.UnixNano()))
}

// JobKey is rule \0 page \0 psid: one job per rule and thread.
func JobKey(k store.ThreadKey, rule string) []byte {
	b := make([]byte, 0, len(rule)+1+len(k.Page)+1+len(k.PSID))
	b = append(b, rule...)
	b = append(b, 0)
	return append(b, ThreadKey(k)...)
}

// LaneKey is the prefix of a lane's keys in both lane indexes.
func LaneKey(app string, k store.ThreadKey) []byte {
	b := make([]byte, 0, len(app)+len(k.Page)+len(k.PSID)+3+8)
	b = append(b, app...)
	b = append(b, 0)
	b = append(b, k.Page...)
	b = append(b, 0)
	b = append(b, k.PSID...)
	return append(b, 0)
}

// LaneIDKey is a delivery's key in the lane indexes.
func LaneIDKey(d *store.Delivery) []byte {
	return binary.BigEndian.AppendUint64(LaneKey(d.App, store.ThreadKey{Page: d.Page, PSID: d.PSID}), d.ID)
}

// PastLane is a key after every key of the lane prefix ends: ids are 8
// bytes, so 9 bytes of 0xff sort after all of them.
func PastLane(prefix []byte) []byte {
	return append(append([]byte(nil), prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

// Nanos is t in nanoseconds since 1970, 0 for the zero time.
func Nanos(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

// FromNanos reads Nanos back.
func FromNanos(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

// TimeOrdered names the day buckets of dedup marks keyed by the event's
// time then the key ("t:" and the date); a bucket named by the date alone
// holds marks of the earlier layout (the key alone), still read until the
// sweep drops it.
const TimeOrdered = "t:"

// DayName is the date of a day bucket of dedup marks.
func DayName(t time.Time) string { return t.UTC().Format("20060102") }

// Day numbers the UTC day of t (the date DayName names) from 1970-01-01.
func Day(t time.Time) int64 {
	const secondsPerDay = 24 * 60 * 60
	s := t.Unix()
	if s < 0 && s%secondsPerDay != 0 {
		return s/secondsPerDay - 1 // division rounds toward zero
	}
	return s / secondsPerDay
}

// MarkKey is a dedup mark: the event's time in milliseconds, then the key.
func MarkKey(key string, at time.Time) []byte {
	ms := uint64(max(at.UnixMilli(), 0)) // the zero time is before 1970: 0
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), ms), key...)
}

// TranscriptPrefix is the prefix of a thread's transcript keys.
func TranscriptPrefix(k store.ThreadKey) []byte { return append(ThreadKey(k), 0) }

// TranscriptPos is an entry's place in its thread: at, then seq.
func TranscriptPos(at time.Time, seq uint64) []byte {
	return append(TimeKey(at), U64(seq)...)
}

// PSIDField is how a person's PSID appears in the JSON of a delivery or a
// one-time token (encoding/json writes digits unescaped).
func PSIDField(psid string) []byte { return []byte(`"psid":"` + psid + `"`) }

// LaneValue is a pending delivery's entry in the lanes index: what
// scheduling needs (next attempt, created, attempts), so that listing lanes
// never reads a delivery.
func LaneValue(d *store.Delivery) []byte {
	v := make([]byte, 20)
	binary.BigEndian.PutUint64(v, Nanos(d.NextAttempt))
	binary.BigEndian.PutUint64(v[8:], Nanos(d.CreatedAt))
	binary.BigEndian.PutUint32(v[16:], uint32(d.Attempts))
	return v
}

// laneHead decodes a lane index entry of thread k.
func LaneHead(k store.ThreadKey, key, v []byte) (store.LaneHead, error) {
	if len(key) < 8 || len(v) != 20 {
		return store.LaneHead{}, fmt.Errorf("lane index entry %q is damaged", key)
	}
	return store.LaneHead{
		ThreadKey:   k,
		ID:          binary.BigEndian.Uint64(key[len(key)-8:]),
		NextAttempt: FromNanos(binary.BigEndian.Uint64(v)),
		CreatedAt:   FromNanos(binary.BigEndian.Uint64(v[8:])),
		Attempts:    int(binary.BigEndian.Uint32(v[16:])),
	}, nil
}

// SplitJournal splits journal entry seq's value into its JSON header and
// the event's bytes (see store/bolt AppendJournal: a 4-byte header length, the header, the event); both alias v.
func SplitJournal(seq uint64, v []byte) (hdr, event []byte, err error) {
	if len(v) < 4 || int(binary.BigEndian.Uint32(v)) > len(v)-4 {
		return nil, nil, fmt.Errorf("journal entry %d is damaged", seq)
	}
	n := 4 + int(binary.BigEndian.Uint32(v))
	return v[4:n], v[n:], nil
}

// LaneOf reads the lane of an outbox value. Its own records begin
// {"id":N,"app":"…","page_id":"…","psid":"…" (encoding/json writes
// fields in order), and a done mark per delivery reads them: those it
// reads off the front; anything else it decodes.
func LaneOf(id uint64, v []byte) (*store.Delivery, error) {
	d := &store.Delivery{ID: id}
	rest, ok := bytes.CutPrefix(v, []byte(`{"id":`))
	if ok {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		rest = rest[i:]
		for _, f := range []struct {
			name string
			to   *string
		}{{`,"app":"`, &d.App}, {`,"page_id":"`, &d.Page}, {`,"psid":"`, &d.PSID}} {
			if rest, ok = bytes.CutPrefix(rest, []byte(f.name)); !ok {
				break
			}
			end := bytes.IndexByte(rest, '"')
			if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
				ok = false // an escape: let the decoder read it
				break
			}
			*f.to, rest = string(rest[:end]), rest[end+1:]
		}
	}
	if ok {
		return d, nil
	}
	var probe struct {
		App  string `json:"app"`
		Page string `json:"page_id"`
		PSID string `json:"psid"`
	}
	if err := json.Unmarshal(v, &probe); err != nil {
		return nil, fmt.Errorf("delivery %s: %w", strconv.FormatUint(id, 10), err)
	}
	return &store.Delivery{ID: id, App: probe.App, Page: probe.Page, PSID: probe.PSID}, nil
}

// SharedEventOf reads the journal entry whose event an outbox or dead
// letter value (of delivery id) reads as its own: its journal_seq when it
// shares the event, else 0.
func SharedEventOf(id uint64, v []byte) (uint64, error) {
	var probe struct {
		JournalSeq  uint64 `json:"journal_seq"`
		SharesEvent bool   `json:"shares_event"`
	}
	if err := jsonv2.Unmarshal(v, &probe, readOptions); err != nil {
		return 0, fmt.Errorf("delivery %d: %w", id, err)
	}
	if !probe.SharesEvent {
		return 0, nil
	}
	return probe.JournalSeq, nil
}

// JournalOf reports whether journal entry seq's value is an event of the
// person k: its header's page and the event's sender or recipient (an
// echo's recipient is the person). Each entry holds one event (ingress
// journals every event of a batched webhook on its own), so an entry is
// the person's or not. A byte search for the PSID comes before anything
// is decoded.
func JournalOf(seq uint64, v []byte, k store.ThreadKey) (bool, error) {
	if !bytes.Contains(v, []byte(`"`+k.PSID+`"`)) {
		return false, nil
	}
	hdr, ev, err := SplitJournal(seq, v)
	if err != nil {
		return false, err
	}
	var h struct {
		Page string `json:"page_id"`
	}
	type party struct {
		ID string `json:"id"`
	}
	var who struct {
		Sender    party `json:"sender"`
		Recipient party `json:"recipient"`
	}
	if err := json.Unmarshal(hdr, &h); err != nil {
		return false, fmt.Errorf("journal entry %d: %w", seq, err)
	}
	if h.Page != k.Page || json.Unmarshal(ev, &who) != nil {
		return false, nil // another page's, or not an event Baton routed to a person
	}
	return who.Sender.ID == k.PSID || who.Recipient.ID == k.PSID, nil
}
