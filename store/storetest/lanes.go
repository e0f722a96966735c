package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
)

// enqueueAll enqueues the deliveries in one write and returns their ids.
func enqueueAll(t testing.TB, s store.Store, dels ...store.Delivery) []uint64 {
	t.Helper()
	var ids []uint64
	update(t, s, func(tx store.Tx) error {
		ids = ids[:0]
		for _, d := range dels {
			if err := tx.Enqueue(&d); err != nil {
				return err
			}
			ids = append(ids, d.ID)
		}
		return nil
	})
	return ids
}

func laneDelivery(app, page, psid string, n int) store.Delivery {
	return store.Delivery{App: app, Page: page, PSID: psid, Kind: "message", CreatedAt: t0.Add(time.Duration(n) * time.Second),
		NextAttempt: t0.Add(time.Duration(n) * time.Second), Event: []byte(fmt.Sprintf(`{"n":%d}`, n))}
}

// testLanes: the dispatcher schedules from the lanes (one app, one
// thread) a page at a time, each with its oldest pending delivery, and
// reads a lane's next deliveries in id order; pending counts follow every
// move in and out of the outbox, across a reopen.
func testLanes(t *testing.T, open Opener) {
	dir := t.TempDir()
	s := open(t, dir)
	ids := enqueueAll(t, s,
		laneDelivery("a", "p1", "u2", 0),
		laneDelivery("a", "p1", "u1", 1),
		laneDelivery("b", "p1", "u1", 2), // another app's lane on the same thread
		laneDelivery("a", "p1", "u2", 3),
		laneDelivery("a", "p2", "u1", 4),
		laneDelivery("a", "p1", "u10", 5), // a PSID that another prefixes
		laneDelivery("a", "p1", "u1", 6),
	)
	lanes := func(app string, after store.ThreadKey, limit int) (out []store.LaneHead) {
		t.Helper()
		view(t, s, func(tx store.ReadTx) error {
			var err error
			out, err = tx.Lanes(app, after, limit)
			return err
		})
		return out
	}
	var lastPending []store.LaneHead
	pending := func(app string, k store.ThreadKey, limit int) (out []uint64) {
		t.Helper()
		view(t, s, func(tx store.ReadTx) error {
			var err error
			lastPending, err = tx.LanePending(app, k, limit)
			return err
		})
		for _, h := range lastPending {
			out = append(out, h.ID)
		}
		return out
	}
	counts := func() (out map[string]int) {
		t.Helper()
		view(t, s, func(tx store.ReadTx) error {
			var err error
			out, err = tx.CountPending()
			return err
		})
		return out
	}
	u1, u2, u10 := store.ThreadKey{Page: "p1", PSID: "u1"}, store.ThreadKey{Page: "p1", PSID: "u2"}, store.ThreadKey{Page: "p1", PSID: "u10"}
	p2u1 := store.ThreadKey{Page: "p2", PSID: "u1"}
	head := func(k store.ThreadKey, id uint64, n int) store.LaneHead {
		at := t0.Add(time.Duration(n) * time.Second)
		return store.LaneHead{ThreadKey: k, ID: id, CreatedAt: at, NextAttempt: at}
	}
	same := func(got, want []store.LaneHead) bool {
		return slices.EqualFunc(got, want, func(g, w store.LaneHead) bool {
			return g.ThreadKey == w.ThreadKey && g.ID == w.ID && g.Attempts == w.Attempts && g.CreatedAt.Equal(w.CreatedAt) && g.NextAttempt.Equal(w.NextAttempt)
		})
	}
	want := []store.LaneHead{head(u1, ids[1], 1), head(u10, ids[5], 5), head(u2, ids[0], 0), head(p2u1, ids[4], 4)}
	if got := lanes("a", store.ThreadKey{}, 10); !same(got, want) {
		t.Fatalf("lanes of a:\n got %+v\nwant %+v (thread key order, each with its oldest)", got, want)
	}
	if got := lanes("a", store.ThreadKey{}, 2); !same(got, want[:2]) {
		t.Errorf("first page of 2: %+v", got)
	}
	if got := lanes("a", u10, 10); !same(got, want[2:]) {
		t.Errorf("after %v: %+v", u10, got)
	}
	if got := lanes("a", p2u1, 10); len(got) != 0 {
		t.Errorf("after the last lane: %+v", got)
	}
	if got := lanes("b", store.ThreadKey{}, 10); !same(got, []store.LaneHead{head(u1, ids[2], 2)}) {
		t.Errorf("lanes of b: %+v", got)
	}
	if got := pending("a", u1, 10); !slices.Equal(got, []uint64{ids[1], ids[6]}) {
		t.Errorf("pending on a/u1: %v, want %v", got, []uint64{ids[1], ids[6]})
	}
	if !same(lastPending, []store.LaneHead{head(u1, ids[1], 1), head(u1, ids[6], 6)}) {
		t.Errorf("pending on a/u1 with their schedules: %+v", lastPending)
	}
	if got := pending("a", u1, 1); !slices.Equal(got, []uint64{ids[1]}) {
		t.Errorf("pending on a/u1, limit 1: %v", got)
	}
	if got := pending("a", store.ThreadKey{Page: "p1", PSID: "nobody"}, 10); len(got) != 0 {
		t.Errorf("pending on a thread without deliveries: %v", got)
	}
	if got := counts(); got["a"] != 6 || got["b"] != 1 || len(got) != 2 {
		t.Errorf("counts %v, want a:6 b:1", got)
	}

	// A failed attempt moves the head's schedule; delivering it moves the
	// lane on; a dead letter leaves the lane and comes back first.
	next := t0.Add(time.Hour)
	update(t, s, func(tx store.Tx) error {
		d, err := tx.Delivery(ids[1])
		if err != nil {
			return err
		}
		d.Attempts, d.NextAttempt, d.LastError = 2, next, "bot down"
		return tx.UpdateDelivery(d)
	})
	failed := head(u1, ids[1], 1)
	failed.Attempts, failed.NextAttempt = 2, next
	if got := lanes("a", store.ThreadKey{}, 1); !same(got, []store.LaneHead{failed}) {
		t.Errorf("after a failed attempt: %+v, want %+v", got, failed)
	}
	update(t, s, func(tx store.Tx) error {
		d, err := tx.Delivery(ids[1])
		if err != nil {
			return err
		}
		if err := tx.KillDelivery(d); err != nil {
			return err
		}
		return tx.DeleteDelivery(ids[0])
	})
	if got := pending("a", u1, 10); !slices.Equal(got, []uint64{ids[6]}) {
		t.Errorf("after the head died: %v", got)
	}
	if got := lanes("a", u10, 1); !same(got, []store.LaneHead{head(u2, ids[3], 3)}) {
		t.Errorf("after the head was delivered: %+v", got)
	}
	update(t, s, func(tx store.Tx) error {
		_, err := tx.ReviveDelivery(ids[1], next)
		return err
	})
	if got := pending("a", u1, 10); !slices.Equal(got, []uint64{ids[1], ids[6]}) {
		t.Errorf("after the retry: %v, want the retried one first", got)
	}
	if got := counts(); got["a"] != 5 || got["b"] != 1 {
		t.Errorf("counts %v, want a:5 b:1", got)
	}
	update(t, s, func(tx store.Tx) error {
		for _, id := range []uint64{ids[2], ids[2], 999} { // twice, and one never enqueued: no-ops
			if err := tx.DeleteDelivery(id); err != nil {
				return err
			}
		}
		return nil
	})
	if got := counts(); got["a"] != 5 || got["b"] != 0 {
		t.Errorf("counts %v, want a:5 and no b", got)
	}
	if got := lanes("b", store.ThreadKey{}, 10); len(got) != 0 {
		t.Errorf("lanes of b after its one delivery: %+v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	if got := counts(); got["a"] != 5 || len(got) != 1 {
		t.Errorf("counts after reopen %v", got)
	}
	if got := lanes("a", store.ThreadKey{}, 10); len(got) != 4 || got[0].ID != ids[1] || !got[0].NextAttempt.Equal(next) || got[0].Attempts != 0 {
		t.Errorf("lanes after reopen %+v", got)
	}
}

// testLaterDelivered: a delivery that goes out after an older one of its
// lane died marks it, dead or retried, so that its bot can tell it gets
// the older one out of order; other lanes and newer deliveries are not
// marked.
func testLaterDelivered(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	ids := enqueueAll(t, s,
		laneDelivery("a", "p", "u", 0),
		laneDelivery("a", "p", "u", 1),
		laneDelivery("a", "p", "u", 2),
		laneDelivery("a", "p", "v", 3),
		laneDelivery("b", "p", "u", 4),
		laneDelivery("a", "p", "u", 5),
	)
	deadAt := t0.Add(time.Minute)
	kill := func(ids ...uint64) {
		update(t, s, func(tx store.Tx) error {
			for _, id := range ids {
				d, err := tx.Delivery(id)
				if err != nil {
					return err
				}
				d.DeadAt = deadAt
				if err := tx.KillDelivery(d); err != nil {
					return err
				}
			}
			return nil
		})
	}
	deliver := func(ids ...uint64) {
		update(t, s, func(tx store.Tx) error {
			for _, id := range ids {
				if err := tx.DeleteDelivery(id); err != nil {
					return err
				}
			}
			return nil
		})
	}
	get := func(id uint64) (d store.Delivery) {
		t.Helper()
		view(t, s, func(tx store.ReadTx) error {
			var err error
			d, err = tx.Delivery(id)
			return err
		})
		return d
	}
	kill(ids[0], ids[1])
	if d := get(ids[0]); d.LaterDelivered || !d.RetriedDeadAt.IsZero() {
		t.Errorf("a dead letter nothing passed yet: %+v", d)
	}
	deliver(ids[3], ids[4]) // other lanes: an app's other thread, another app's same thread
	if d := get(ids[0]); d.LaterDelivered {
		t.Error("marked by a delivery of another lane")
	}
	update(t, s, func(tx store.Tx) error {
		d, err := tx.ReviveDelivery(ids[1], t0.Add(time.Hour))
		if err != nil || !d.RetriedDeadAt.Equal(deadAt) || d.LaterDelivered || !d.DeadAt.IsZero() || d.Status != store.DeliveryPending {
			return fmt.Errorf("revived %+v: %v", d, err)
		}
		return nil
	})
	deliver(ids[2]) // the lane goes on past both: one dead, one retried and pending
	for _, id := range ids[:2] {
		if d := get(id); !d.LaterDelivered {
			t.Errorf("delivery %d (%s) not marked after a later one of its lane went out", id, d.Status)
		}
	}
	if d := get(ids[5]); d.LaterDelivered {
		t.Error("a newer delivery marked")
	}
	update(t, s, func(tx store.Tx) error {
		d, err := tx.ReviveDelivery(ids[0], t0.Add(time.Hour))
		if err != nil || !d.RetriedDeadAt.Equal(deadAt) || !d.LaterDelivered || d.Attempts != 0 {
			return fmt.Errorf("revived %+v: %v (a retry keeps the mark)", d, err)
		}
		return nil
	})
	view(t, s, func(tx store.ReadTx) error {
		heads, err := tx.LanePending("a", store.ThreadKey{Page: "p", PSID: "u"}, 10)
		var got []uint64
		for _, h := range heads {
			got = append(got, h.ID)
		}
		if want := []uint64{ids[0], ids[1], ids[5]}; err != nil || !slices.Equal(got, want) {
			t.Errorf("lane after both retries: %v %v, want %v", got, err, want)
		}
		return nil
	})
}
