package storetest

import (
	"errors"
	"fmt"
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
