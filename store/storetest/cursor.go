package storetest

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/batonhq/baton/store"
)

// testInvalidCursor: a listing cursor the store did not hand out, or one
// handed out for another page, is store.ErrInvalidCursor (the API's 400),
// with a message that says what is wrong; the cursor it did hand out works.
func testInvalidCursor(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	update(t, s, func(tx store.Tx) error {
		for i := range 6 {
			if err := tx.PutThread(owned(fmt.Sprintf("p%d", i%2), fmt.Sprintf("u%d", i), "A", t0)); err != nil {
				return err
			}
		}
		return nil
	})
	var next string
	view(t, s, func(tx store.ReadTx) error {
		var err error
		_, next, err = tx.Threads(store.ThreadFilter{Page: "p1", Limit: 1})
		return err
	})
	if next == "" {
		t.Fatal("no cursor after the first of three threads")
	}
	view(t, s, func(tx store.ReadTx) error {
		if _, _, err := tx.Threads(store.ThreadFilter{Page: "p1", Limit: 1, Cursor: next}); err != nil {
			t.Errorf("the store's own cursor: %v", err)
		}
		for _, f := range []store.ThreadFilter{
			{Cursor: "!!"},               // does not decode
			{Cursor: "dTE"},              // decodes, but names no thread
			{Page: "p0", Cursor: next},   // from p1's listing
			{Page: "p0", Cursor: "!!%%"}, // does not decode, with a page
		} {
			_, _, err := tx.Threads(f)
			if !errors.Is(err, store.ErrInvalidCursor) {
				t.Errorf("cursor %q on page %q: %v, want ErrInvalidCursor", f.Cursor, f.Page, err)
				continue
			}
			t.Logf("cursor %q on page %q: %v", f.Cursor, f.Page, err)
		}
		return nil
	})
}

// testDeliveryPages: the outbox and the dead letters list a page at a
// time, by id, from after the last id of the previous page, so that an
// admin listing of a long outbox (a bot down for hours) reads a page, not
// the outbox; limit <= 0 still lists everything.
func testDeliveryPages(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	var ids []uint64
	update(t, s, func(tx store.Tx) error {
		for i := range 7 {
			d := &store.Delivery{App: "a", Page: "1", PSID: fmt.Sprint(i), Event: []byte(fmt.Sprintf(`{"n":%d}`, i))}
			if err := tx.Enqueue(d); err != nil {
				return err
			}
			ids = append(ids, d.ID)
		}
		// Every other one dies: both listings have gaps in their ids.
		for _, id := range []uint64{ids[1], ids[3], ids[5]} {
			d, err := tx.Delivery(id)
			if err != nil {
				return err
			}
			if err := tx.KillDelivery(d); err != nil {
				return err
			}
		}
		return nil
	})
	pages := func(list func(tx store.ReadTx, after uint64, limit int) ([]store.Delivery, error), limit int) (got [][]uint64) {
		view(t, s, func(tx store.ReadTx) error {
			var after uint64
			for range 10 {
				ds, err := list(tx, after, limit)
				if err != nil {
					return err
				}
				if len(ds) == 0 {
					return nil
				}
				var page []uint64
				for _, d := range ds {
					if len(d.Event) == 0 {
						t.Errorf("delivery %d listed without its event", d.ID)
					}
					page = append(page, d.ID)
				}
				got = append(got, page)
				after = ds[len(ds)-1].ID
			}
			return fmt.Errorf("more than 10 pages")
		})
		return got
	}
	pending := func(tx store.ReadTx, after uint64, limit int) ([]store.Delivery, error) {
		return tx.PendingDeliveries(after, limit)
	}
	dead := func(tx store.ReadTx, after uint64, limit int) ([]store.Delivery, error) {
		return tx.DeadDeliveries(after, limit)
	}
	for _, c := range []struct {
		name  string
		list  func(store.ReadTx, uint64, int) ([]store.Delivery, error)
		limit int
		want  [][]uint64
	}{
		{"pending by 3", pending, 3, [][]uint64{{ids[0], ids[2], ids[4]}, {ids[6]}}},
		{"pending by 2", pending, 2, [][]uint64{{ids[0], ids[2]}, {ids[4], ids[6]}}},
		{"pending, all", pending, 0, [][]uint64{{ids[0], ids[2], ids[4], ids[6]}}},
		{"dead by 2", dead, 2, [][]uint64{{ids[1], ids[3]}, {ids[5]}}},
		{"dead, all", dead, 0, [][]uint64{{ids[1], ids[3], ids[5]}}},
	} {
		if got := pages(c.list, c.limit); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: pages %v, want %v", c.name, got, c.want)
		}
	}
	view(t, s, func(tx store.ReadTx) error {
		// Past the last id, and at the very end of the id space: nothing.
		for _, after := range []uint64{ids[6], math.MaxUint64} {
			if ds, err := tx.PendingDeliveries(after, 10); err != nil || len(ds) != 0 {
				t.Errorf("pending after %d: %d deliveries, %v; want none", after, len(ds), err)
			}
		}
		return nil
	})
}
