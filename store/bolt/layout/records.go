package layout

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// The records every webhook writes (its thread, its delivery, its line of
// the transcript, its journal header) are encoded here by hand, into one
// buffer each, to the very bytes encoding/json writes for them (and the
// store's other records are written with): field
// order, omitempty and omitzero, times as time.Time.MarshalJSON writes
// them, strings escaped as encoding/json escapes them (<, > and &
// included). encoding/json cost ~12 us and a dozen allocations per event
// (reflection, a buffer per time, a compaction pass over each); this
// costs a fraction. TestRecordEncodersMatchEncodingJSON fills every field
// of each record by reflection and compares: a field added to a record
// and not here fails it.

// recordWriter appends a record's fields. keys are the JSON literals
// before each value (`{"seq":` for the first, `,"at":` for the rest); the
// first field of each record is always written, so no comma is decided
// at run time. The first time that does not encode is kept as err.
type recordWriter struct {
	b   []byte
	err error
}

func (w *recordWriter) str(key, s string) {
	w.b = appendJSONString(append(w.b, key...), s)
}

func (w *recordWriter) strOmitEmpty(key, s string) {
	if s != "" {
		w.str(key, s)
	}
}

func (w *recordWriter) uint(key string, n uint64) {
	w.b = strconv.AppendUint(append(w.b, key...), n, 10)
}

func (w *recordWriter) uintOmitEmpty(key string, n uint64) {
	if n != 0 {
		w.uint(key, n)
	}
}

func (w *recordWriter) int(key string, n int) {
	w.b = strconv.AppendInt(append(w.b, key...), int64(n), 10)
}

func (w *recordWriter) trueOmitEmpty(key string, v bool) {
	if v {
		w.b = append(append(w.b, key...), "true"...)
	}
}

// time writes t as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds, refusing years outside 0-9999 as it does).
func (w *recordWriter) time(key string, t time.Time) {
	w.b = append(append(w.b, key...), '"')
	b, err := t.AppendText(w.b)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.b = append(b, '"')
}

func (w *recordWriter) timeOmitZero(key string, t time.Time) {
	if !t.IsZero() {
		w.time(key, t)
	}
}

func (w *recordWriter) end() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return append(w.b, '}'), nil
}

func EncodeThread(t *store.Thread) ([]byte, error) {
	w := recordWriter{b: make([]byte, 0, 512)}
	w.str(`{"page_id":`, t.Page)
	w.str(`,"psid":`, t.PSID)
	w.str(`,"state":`, string(t.State))
	w.strOmitEmpty(`,"owner":`, t.Owner)
	w.timeOmitZero(`,"expires_at":`, t.ExpiresAt)
	w.timeOmitZero(`,"last_user_message_at":`, t.LastUserMessageAt)
	w.uint(`,"version":`, t.Version)
	w.time(`,"updated_at":`, t.UpdatedAt)
	w.timeOmitZero(`,"active_at":`, t.ActiveAt)
	w.timeOmitZero(`,"owner_active_at":`, t.OwnerActiveAt)
	w.timeOmitZero(`,"hold_until":`, t.HoldUntil)
	w.strOmitEmpty(`,"held_by":`, t.HeldBy)
	w.timeOmitZero(`,"timer_at":`, t.TimerAt)
	w.timeOmitZero(`,"evidence_at":`, t.EvidenceAt)
	w.strOmitEmpty(`,"previous_owner":`, t.PreviousOwner)
	w.strOmitEmpty(`,"last_cause":`, t.LastCause)
	return w.end()
}

// EncodeDelivery encodes a delivery; one that carries its own event
// (a dead letter, or an event not kept in the journal) goes through
// encoding/json, which compacts and escapes the event's bytes.
func EncodeDelivery(d *store.Delivery) ([]byte, error) {
	if len(d.Event) > 0 {
		return json.Marshal(d)
	}
	w := recordWriter{b: make([]byte, 0, 384)}
	w.uint(`{"id":`, d.ID)
	w.str(`,"app":`, d.App)
	w.str(`,"page_id":`, d.Page)
	w.str(`,"psid":`, d.PSID)
	w.str(`,"channel":`, d.Channel)
	w.str(`,"kind":`, d.Kind)
	w.uintOmitEmpty(`,"journal_seq":`, d.JournalSeq)
	w.trueOmitEmpty(`,"shares_event":`, d.SharesEvent)
	w.str(`,"thread_state":`, d.State)
	w.strOmitEmpty(`,"thread_owner":`, d.Owner)
	w.time(`,"created_at":`, d.CreatedAt)
	w.int(`,"attempts":`, d.Attempts)
	w.timeOmitZero(`,"next_attempt":`, d.NextAttempt)
	w.strOmitEmpty(`,"last_error":`, d.LastError)
	w.str(`,"status":`, d.Status)
	w.timeOmitZero(`,"dead_at":`, d.DeadAt)
	w.timeOmitZero(`,"retried_dead_at":`, d.RetriedDeadAt)
	w.trueOmitEmpty(`,"later_delivered":`, d.LaterDelivered)
	return w.end()
}

func EncodeTranscript(e *store.TranscriptEntry) ([]byte, error) {
	w := recordWriter{b: make([]byte, 0, 256+len(e.Text)+len(e.Payload)+len(e.Metadata))}
	w.uint(`{"seq":`, e.Seq)
	w.time(`,"at":`, e.At)
	w.str(`,"kind":`, e.Kind)
	w.strOmitEmpty(`,"from":`, e.From)
	w.strOmitEmpty(`,"to":`, e.To)
	w.strOmitEmpty(`,"app":`, e.App)
	w.strOmitEmpty(`,"text":`, e.Text)
	if len(e.Attachments) > 0 {
		w.b = append(w.b, `,"attachments":[`...)
		for i, a := range e.Attachments {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.str(`{"type":`, a.Type)
			w.strOmitEmpty(`,"url":`, a.URL)
			w.b = append(w.b, '}')
		}
		w.b = append(w.b, ']')
	}
	w.strOmitEmpty(`,"mid":`, e.Mid)
	w.strOmitEmpty(`,"payload":`, e.Payload)
	w.strOmitEmpty(`,"event":`, e.Event)
	w.strOmitEmpty(`,"metadata":`, e.Metadata)
	w.trueOmitEmpty(`,"ai_generated":`, e.AIGenerated)
	w.time(`,"recorded_at":`, e.RecordedAt)
	return w.end()
}

// appendJSONString appends s quoted as encoding/json quotes a string: ",
// \ and control characters escaped (\b \f \n \r \t by name), <, > and &
// as \u003c \u003e \u0026, U+2028 and U+2029 escaped, and each byte of
// invalid UTF-8 written as \ufffd. Runs of bytes that need nothing are
// copied at once.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainJSON[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// plainJSON are the ASCII bytes appendJSONString copies as they are.
var plainJSON = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// DecodeThread reads a thread record. What EncodeThread writes (the
// fields in its order, strings without escapes) is read off the bytes:
// jsonv2, under encoding/json's rules (names in any case, in any order,
// escapes, null) took ~6 us a record on this host, and every webhook
// reads its thread. Anything else, a record another writer made
// included, goes to jsonv2, whose reading is the reference:
// FuzzDecodeThread checks that whatever the fast path takes, it reads as
// jsonv2 does.
func DecodeThread(raw []byte) (store.Thread, error) {
	if t, ok := readThread(raw); ok {
		return t, nil
	}
	var t store.Thread
	err := jsonv2.Unmarshal(raw, &t, readOptions)
	return t, err
}

// readOptions read records as store/bolt reads them all: encoding/json's
// rules on jsonv2's decoder.
var readOptions = jsonv1.DefaultOptionsV1()

// readThread reads a record EncodeThread wrote, or reports false.
func readThread(raw []byte) (store.Thread, bool) {
	var t store.Thread
	r := recordReader{raw: raw, s: string(raw)} // the strings are pieces of one copy
	r.str(`{"page_id":`, &t.Page, true)
	r.str(`,"psid":`, &t.PSID, true)
	var state string
	r.str(`,"state":`, &state, true)
	t.State = statemachine.State(state)
	r.str(`,"owner":`, &t.Owner, false)
	r.time(`,"expires_at":`, &t.ExpiresAt, false)
	r.time(`,"last_user_message_at":`, &t.LastUserMessageAt, false)
	r.uint(`,"version":`, &t.Version)
	r.time(`,"updated_at":`, &t.UpdatedAt, true)
	r.time(`,"active_at":`, &t.ActiveAt, false)
	r.time(`,"owner_active_at":`, &t.OwnerActiveAt, false)
	r.time(`,"hold_until":`, &t.HoldUntil, false)
	r.str(`,"held_by":`, &t.HeldBy, false)
	r.time(`,"timer_at":`, &t.TimerAt, false)
	r.time(`,"evidence_at":`, &t.EvidenceAt, false)
	r.str(`,"previous_owner":`, &t.PreviousOwner, false)
	r.str(`,"last_cause":`, &t.LastCause, false)
	return t, r.end()
}

// recordReader reads the fields recordWriter writes, in order; the first
// thing it does not expect makes it fail, and the caller decodes the
// record the slow way. raw is the record and s the same bytes as a
// string, which the strings read are cut from.
type recordReader struct {
	raw    []byte
	s      string
	i      int
	failed bool
}

// key consumes key when it comes next; a required one must.
func (r *recordReader) key(key string, required bool) bool {
	if r.failed {
		return false
	}
	if len(r.raw)-r.i >= len(key) && string(r.raw[r.i:r.i+len(key)]) == key {
		r.i += len(key)
		return true
	}
	r.failed = r.failed || required
	return false
}

// quoted returns the span of a string value without escapes or control
// characters, in valid UTF-8, and consumes it.
func (r *recordReader) quoted() (from, to int) {
	if r.i >= len(r.raw) || r.raw[r.i] != '"' {
		r.failed = true
		return 0, 0
	}
	from, ascii := r.i+1, true
	for j := from; j < len(r.raw); j++ {
		switch c := r.raw[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(r.raw[from:j]) {
				r.failed = true
				return 0, 0
			}
			r.i = j + 1
			return from, j
		case c == '\\' || c < ' ':
			r.failed = true
			return 0, 0
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	r.failed = true
	return 0, 0
}

func (r *recordReader) str(key string, to *string, required bool) {
	if r.key(key, required) {
		if from, end := r.quoted(); !r.failed {
			*to = r.s[from:end]
		}
	}
}

func (r *recordReader) time(key string, to *time.Time, required bool) {
	if r.key(key, required) {
		from, end := r.quoted()
		if !r.failed && to.UnmarshalText(r.raw[from:end]) != nil {
			r.failed = true
		}
	}
}

// uint reads a required unsigned integer as encoding/json writes one: no
// sign, no leading zero, no fraction or exponent.
func (r *recordReader) uint(key string, to *uint64) {
	if !r.key(key, true) {
		return
	}
	j := r.i
	for j < len(r.raw) && r.raw[j] >= '0' && r.raw[j] <= '9' {
		j++
	}
	n, err := strconv.ParseUint(r.s[r.i:j], 10, 64)
	if err != nil || (r.raw[r.i] == '0' && j > r.i+1) {
		r.failed = true
		return
	}
	*to, r.i = n, j
}

// end reports whether the record was read whole.
func (r *recordReader) end() bool {
	return !r.failed && r.i == len(r.raw)-1 && r.raw[r.i] == '}'
}
