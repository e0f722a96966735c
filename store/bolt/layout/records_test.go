package layout

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/batonhq/baton/store"
)

// Values the filler draws from: strings that need every kind of escape,
// times in and out of UTC, with and without nanoseconds.
var (
	fillStrings = []string{"bench-bot", "7123456789012345", `a "quoted" \ back`, "<b>&amp;</b>", "tab\tnl\ncr\r\b\f\x00\x1f\x7f",
		"caf\u00e9 \u2028 \u2029 \U0001F600", "bad \xff\xfe utf-8 \xe2\x82", strings.Repeat("long text ", 120)}
	fillTimes = []time.Time{time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC),
		time.Date(2026, 6, 30, 23, 59, 59, 100, time.FixedZone("x", -(9*3600+30*60))), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Unix(1795557600, 5000).In(time.FixedZone("y", 3600))}
)

// fill sets every field of the struct v points to (embedded structs'
// too) to a value drawn by rng; each field is left zero with probability
// zero.
func fill(t testing.TB, v reflect.Value, rng *rand.Rand, zero float64) {
	for i := range v.NumField() {
		f := v.Field(i)
		if rng.Float64() < zero && !v.Type().Field(i).Anonymous {
			continue
		}
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(fillTimes[rng.IntN(len(fillTimes))]))
		case f.Type() == reflect.TypeFor[json.RawMessage]():
			// the event of a delivery that carries its own: see below
		case f.Kind() == reflect.Struct:
			fill(t, f, rng, zero)
		case f.Kind() == reflect.String:
			f.SetString(fillStrings[rng.IntN(len(fillStrings))])
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Kind() == reflect.Uint64:
			f.SetUint([]uint64{1, 42, 1<<64 - 1}[rng.IntN(3)])
		case f.Kind() == reflect.Int:
			f.SetInt([]int64{1, 7, -3, 1 << 40}[rng.IntN(4)])
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			s := reflect.MakeSlice(f.Type(), 1+rng.IntN(3), 3)
			for j := range s.Len() {
				fill(t, s.Index(j), rng, zero)
			}
			f.Set(s)
		default:
			t.Fatalf("%s.%s: a field of kind %s the filler does not know: teach it, and the record's encoder", v.Type(), v.Type().Field(i).Name, f.Kind())
		}
	}
}

// Each hand-written encoder writes the bytes encoding/json writes, for
// records with every field set, none, and random sets of them.
func TestRecordEncodersMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(name string, r any, got []byte, err error) {
		t.Helper()
		want, wantErr := json.Marshal(r)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s: error %v, encoding/json's %v", name, err, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs from encoding/json:\n got %s\nwant %s", name, got, want)
		}
	}
	for i := range 3000 {
		zero := []float64{0, 1, rng.Float64()}[min(i, 2)]
		var th store.Thread
		fill(t, reflect.ValueOf(&th).Elem(), rng, zero)
		got, err := EncodeThread(&th)
		check("thread", th, got, err)

		var d store.Delivery
		fill(t, reflect.ValueOf(&d).Elem(), rng, zero)
		got, err = EncodeDelivery(&d)
		check("delivery", d, got, err)
		d.Event = json.RawMessage(`{ "text" : "<&>" }`) // its own event: encoding/json's way
		got, err = EncodeDelivery(&d)
		check("delivery with its event", d, got, err)

		var e store.TranscriptEntry
		fill(t, reflect.ValueOf(&e).Elem(), rng, zero)
		got, err = EncodeTranscript(&e)
		check("transcript entry", e, got, err)

		var j store.JournalEntry
		fill(t, reflect.ValueOf(&j).Elem(), rng, zero)
		got, err = appendJournalHeader(nil, &j)
		check("journal header", j, got, err)
	}
	// A time MarshalJSON refuses is refused.
	th := store.Thread{UpdatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	got, err := EncodeThread(&th)
	check("thread of year 10000", th, got, err)
}

// What EncodeThread writes, DecodeThread reads off the bytes, to what
// jsonv2 reads; a record written otherwise (spaces, another order, an
// escape, null, a field of another version) is jsonv2's to read.
func TestDecodeThread(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		zero := []float64{0, 1, rng.Float64()}[min(i, 2)]
		var th store.Thread
		fill(t, reflect.ValueOf(&th).Elem(), rng, zero)
		raw, err := EncodeThread(&th)
		if err != nil {
			t.Fatal(err)
		}
		checkDecodeThread(t, raw)
		if _, ok := readThread(raw); !ok && !strings.ContainsAny(string(raw), "\\") {
			t.Fatalf("the fast path refused a record EncodeThread wrote without escapes: %s", raw)
		}
	}
	for _, raw := range []string{
		`{"page_id":"1","psid":"2","state":"idle","version":0,"updated_at":"2026-12-01T10:00:00Z"}`,
		`{"page_id": "1","psid":"2","state":"idle","version":0,"updated_at":"2026-12-01T10:00:00Z"}`,
		`{"psid":"2","page_id":"1","state":"idle","version":0,"updated_at":"2026-12-01T10:00:00Z"}`,
		`{"page_id":"1","psid":"2","state":"idle","owner":null,"version":0,"updated_at":"2026-12-01T10:00:00Z"}`,
		`{"page_id":"1","psid":"2","state":"idle","version":0,"updated_at":"2026-12-01T10:00:00Z","legacy":true}`,
		`{"page_id":"1","psid":"2","state":"id\u006ce","version":0,"updated_at":"2026-12-01T10:00:00Z"}`,
		`{"Page_ID":"1","psid":"2","state":"idle","version":7,"updated_at":"2026-12-01T10:00:00+02:00"}`,
		`{"page_id":"1","psid":"2","state":"idle","version":01,"updated_at":"2026-12-01T10:00:00Z"}`,
		`{"page_id":"1","psid":"2","state":"idle","version":0,"updated_at":"2026-12-01T10:00:00Z"} `,
		`{"page_id":"1","psid":"2","state":"idle","version":0,"updated_at":"not a time"}`,
	} {
		checkDecodeThread(t, []byte(raw))
	}
}

// FuzzDecodeThread: whatever the fast path reads, jsonv2 reads the same.
func FuzzDecodeThread(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		var th store.Thread
		fill(f, reflect.ValueOf(&th).Elem(), rng, rng.Float64())
		raw, _ := EncodeThread(&th)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkDecodeThread(t, raw) })
}

func checkDecodeThread(t *testing.T, raw []byte) {
	t.Helper()
	var want store.Thread
	wantErr := jsonv2.Unmarshal(raw, &want, readOptions)
	fast, ok := readThread(raw)
	if ok && (wantErr != nil || !reflect.DeepEqual(fast, want)) {
		t.Fatalf("%s: the fast path read\n%+v\njsonv2 %+v, %v", raw, fast, want, wantErr)
	}
	got, err := DecodeThread(raw)
	if (err != nil) != (wantErr != nil) || (err == nil && !reflect.DeepEqual(got, want)) {
		t.Fatalf("%s: DecodeThread %+v, %v; jsonv2 %+v, %v", raw, got, err, want, wantErr)
	}
}

func TestAppendJSONString(t *testing.T) {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	for _, s := range append(fillStrings, "", string(all), "\u2027\u2028\u2029\u202a", "\xed\xa0\x80 surrogate", "end \xe2") {
		checkJSONString(t, s)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range fillStrings {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}

func checkJSONString(t *testing.T, s string) {
	want, _ := json.Marshal(s)
	if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
		t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
	}
}

// BenchmarkRecordEncode: the records of one webhook, by hand and by
// encoding/json.
func BenchmarkRecordEncode(b *testing.B) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	th := store.Thread{ThreadKey: store.ThreadKey{Page: "100200300400500", PSID: "7000000000000001"}, UpdatedAt: now, ActiveAt: now, EvidenceAt: now}
	th.State, th.Owner, th.ExpiresAt, th.LastUserMessageAt, th.Version = "primary", "512345678901234", now.Add(time.Hour), now, 3
	d := store.Delivery{ID: 12, App: "bench-bot", Page: th.Page, PSID: th.PSID, Channel: "messaging", Kind: "message",
		JournalSeq: 4, SharesEvent: true, State: "primary", Owner: th.Owner, CreatedAt: now, NextAttempt: now, Status: "pending"}
	e := store.TranscriptEntry{Seq: 9, At: now, Kind: "message", From: th.PSID, Text: strings.Repeat("Hi, I need help with my order ", 28), Mid: "m_1", RecordedAt: now}
	j := store.JournalEntry{Seq: 5, ReceivedAt: now, App: "bench-bot", Page: th.Page, Channel: "messaging"}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = EncodeThread(&th)
			_, _ = EncodeDelivery(&d)
			_, _ = EncodeTranscript(&e)
			_, _ = appendJournalHeader(make([]byte, 0, 192), &j)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(th)
			_, _ = json.Marshal(d)
			_, _ = json.Marshal(e)
			_, _ = json.Marshal(j)
		}
	})
}
