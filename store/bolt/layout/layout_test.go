package layout

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
)

// Keys read back to what they were made of, and sort in the order Baton
// reads them.
func TestKeysRoundTripAndSort(t *testing.T) {
	k := store.ThreadKey{Page: "100200300400500", PSID: "7123456789012345"}
	if got := SplitThreadKey(ThreadKey(k)); got != k {
		t.Fatalf("thread key %v", got)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if bytes.Compare(TimeKey(t0), TimeKey(t0.Add(time.Nanosecond))) >= 0 {
		t.Fatal("time keys out of order")
	}
	if !bytes.Equal(TimeKey(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)), U64(0)) || bytes.Compare(TimeKey(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)), TimeKey(t0)) <= 0 {
		t.Fatal("times outside int64 nanoseconds are not clamped to the ends")
	}
	d := &store.Delivery{ID: 42, App: "support-bot", Page: k.Page, PSID: k.PSID, NextAttempt: t0.Add(time.Minute), CreatedAt: t0, Attempts: 3}
	h, err := LaneHead(k, LaneIDKey(d), LaneValue(d))
	if err != nil || h.ID != 42 || !h.NextAttempt.Equal(d.NextAttempt) || !h.CreatedAt.Equal(t0) || h.Attempts != 3 {
		t.Fatalf("lane head %+v, %v", h, err)
	}
	if _, err := LaneHead(k, LaneIDKey(d), []byte("short")); err == nil {
		t.Fatal("a damaged lane entry read")
	}
	prefix := LaneKey(d.App, k)
	if key := LaneIDKey(&store.Delivery{ID: ^uint64(0), App: d.App, Page: k.Page, PSID: k.PSID}); bytes.Compare(key, PastLane(prefix)) >= 0 {
		t.Fatal("PastLane sorts before the lane's last id")
	}
	if !FromNanos(Nanos(time.Time{})).IsZero() || !FromNanos(Nanos(t0)).Equal(t0) {
		t.Fatal("nanos round trip")
	}
}

func TestSplitJournal(t *testing.T) {
	hdr, ev := []byte(`{"app":"support-bot"}`), []byte(`{"sender":{"id":"1"}}`)
	v := append(binary.BigEndian.AppendUint32(nil, uint32(len(hdr))), append(hdr, ev...)...)
	h, e, err := SplitJournal(7, v)
	if err != nil || !bytes.Equal(h, hdr) || !bytes.Equal(e, ev) {
		t.Fatalf("%q %q %v", h, e, err)
	}
	for _, bad := range [][]byte{nil, {0, 0}, binary.BigEndian.AppendUint32(nil, 99)} {
		if _, _, err := SplitJournal(7, bad); err == nil {
			t.Errorf("damaged entry %v read", bad)
		}
	}
}
