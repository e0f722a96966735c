package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt/layout"
)

// A file written before the lane indexes gets them at its first Open:
// the dispatcher finds its outbox by lane, and a delivery after a dead
// letter marks it, as on a new file.
func TestLaneIndexesBuiltForAnOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baton.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	err = db.Update(context.Background(), func(tx store.Tx) error {
		ids = ids[:0]
		for i, psid := range []string{"u", "u", "v", "u"} {
			d := &store.Delivery{App: "a", Page: "p", PSID: psid, Event: []byte(fmt.Sprintf(`{"n":%d}`, i))}
			if err := tx.Enqueue(d); err != nil {
				return err
			}
			ids = append(ids, d.ID)
		}
		d, err := tx.Delivery(ids[0])
		if err != nil {
			return err
		}
		return tx.KillDelivery(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// What an older Baton left: no lane indexes, no pending counts.
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{layout.Lanes, layout.DeadLanes} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		var counts [][]byte
		c := tx.Bucket(layout.Meta).Cursor()
		for k, _ := c.Seek([]byte(pendingPrefix)); k != nil && bytes.HasPrefix(k, []byte(pendingPrefix)); k, _ = c.Next() {
			counts = append(counts, append([]byte(nil), k...))
		}
		for _, k := range counts {
			if err := tx.Bucket(layout.Meta).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = raw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}

	s := MustOpen(t, filepath.Dir(path))
	err = s.View(func(tx store.ReadTx) error {
		lanes, err := tx.Lanes("a", store.ThreadKey{}, 10)
		if err != nil {
			return err
		}
		if len(lanes) != 2 || lanes[0].ID != ids[1] || lanes[1].ID != ids[2] {
			t.Errorf("lanes %+v, want u from %d and v from %d", lanes, ids[1], ids[2])
		}
		pending, _ := tx.LanePending("a", store.ThreadKey{Page: "p", PSID: "u"}, 10)
		counts, _ := tx.CountPending()
		if len(pending) != 2 || pending[0].ID != ids[1] || pending[1].ID != ids[3] || counts["a"] != 3 {
			t.Errorf("lane u %v, counts %v", pending, counts)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx store.Tx) error { return tx.DeleteDelivery(ids[1]) })
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx store.ReadTx) error {
		d, err := tx.Delivery(ids[0])
		if err == nil && !d.LaterDelivered {
			t.Errorf("the old dead letter not marked by a later delivery: %+v", d)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fillLanes enqueues perLane deliveries on each of lanes threads,
// sharing journaled 1 KB events as ingress does, interleaved across lanes
// as a bot that is down accumulates them.
func fillLanes(b *testing.B, db store.Store, lanes, perLane int) {
	for round := range perLane {
		for start := 0; start < lanes; start += 1000 {
			if err := db.Update(context.Background(), func(tx store.Tx) error {
				for l := start; l < min(lanes, start+1000); l++ {
					j := &store.JournalEntry{App: "a", Page: "1", Event: event}
					if err := tx.AppendJournal(j); err != nil {
						return err
					}
					d := &store.Delivery{App: "a", Page: "100200300400500", PSID: fmt.Sprint(7000000000000000 + l), Event: event,
						JournalSeq: j.Seq, SharesEvent: true, CreatedAt: time.Unix(1795557600, int64(round))}
					if err := tx.Enqueue(d); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkLaneHeads: the dispatcher's scheduling read, a page of 1,000
// lanes with their heads out of 10,000 lanes of 10 deliveries each (the
// whole outbox is never read).
func BenchmarkLaneHeads(b *testing.B) {
	db := MustOpen(b, b.TempDir())
	fillLanes(b, db, 10000, 10)
	after := store.ThreadKey{}
	for b.Loop() {
		if err := db.View(func(tx store.ReadTx) error {
			heads, err := tx.Lanes("a", after, 1000)
			switch {
			case err != nil:
				return err
			case len(heads) == 0:
				after = store.ThreadKey{}
			default:
				after = heads[len(heads)-1].ThreadKey
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLaneAttemptRead: what the dispatcher reads per attempt, the
// lane's head and the delivery with its event from the journal, from an
// outbox of 100,000 deliveries on 10,000 lanes.
func BenchmarkLaneAttemptRead(b *testing.B) {
	db := MustOpen(b, b.TempDir())
	fillLanes(b, db, 10000, 10)
	i := 0
	for b.Loop() {
		i++
		k := store.ThreadKey{Page: "100200300400500", PSID: fmt.Sprint(7000000000000000 + (i*7919)%10000)}
		if err := db.View(func(tx store.ReadTx) error {
			heads, err := tx.LanePending("a", k, 1)
			if err != nil || len(heads) != 1 {
				return fmt.Errorf("lane %v: %v %v", k, heads, err)
			}
			d, err := tx.Delivery(heads[0].ID)
			if err == nil && len(d.Event) != len(event) {
				err = fmt.Errorf("event of %d bytes", len(d.Event))
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// laneOf reads the front of the store's own records, and decodes any
// other: one with escapes, or with its fields in another order.
func TestLaneOf(t *testing.T) {
	for _, d := range []store.Delivery{
		{ID: 7, App: "support-bot", Page: "100200300400500", PSID: "7123456789012345", Event: []byte(`{"x":1}`)},
		{ID: 8, App: "a", Page: "p", PSID: ""},
		{ID: 9, App: "b<&>", Page: `quote"d`, PSID: "é"}, // escaped by encoding/json
	} {
		v, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := layout.LaneOf(d.ID, v)
		if err != nil || got.App != d.App || got.Page != d.Page || got.PSID != d.PSID || got.ID != d.ID {
			t.Errorf("layout.LaneOf(%s) = %+v, %v", v, got, err)
		}
	}
	got, err := layout.LaneOf(3, []byte(`{"psid":"u","app":"a","id":3,"page_id":"p"}`))
	if err != nil || got.App != "a" || got.Page != "p" || got.PSID != "u" {
		t.Errorf("another order: %+v, %v", got, err)
	}
	if _, err := layout.LaneOf(4, []byte(`{"id":4,"app":`)); err == nil {
		t.Error("a damaged record read")
	}
}
