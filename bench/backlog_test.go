package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// FillOutbox leaves each thread's events pending in order, numbered from
// 1, for one app, its events kept once in the journal.
func TestFillOutbox(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "baton.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := FillOutbox(context.Background(), db, pageIDs(2), "bench-bot", 3, 10, 4, 8, time.Now()); err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx store.ReadTx) error {
		lanes, err := tx.Lanes("bench-bot", store.ThreadKey{}, 10)
		counts, _ := tx.CountPending()
		if err != nil || len(lanes) != 3 || counts["bench-bot"] != 10 {
			return fmt.Errorf("lanes %+v, counts %v, %v", lanes, counts, err)
		}
		for _, l := range lanes {
			heads, _ := tx.LanePending("bench-bot", l.ThreadKey, 10)
			for i, h := range heads {
				d, err := tx.Delivery(h.ID)
				if err != nil || !d.SharesEvent || !strings.Contains(string(d.Event), fmt.Sprintf(`"text":"seq=%d `, i+1)) {
					return fmt.Errorf("thread %v, delivery %d: %s %v", l.ThreadKey, i, d.Event, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The backlog's bot answers 503 until it is up, then counts distinct ids,
// repeats of an id and order per thread.
func TestBacklogRecorder(t *testing.T) {
	rc := newBacklogRecorder(2, 10)
	send := func(id, thread, seq int) int {
		body := fmt.Sprintf(`{"id":"dlv_%d","psid":%q,"event":{"message":{"text":"seq=%d sent=0 x"}}}`, id, PSID(thread), seq)
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		return w.Code
	}
	if code := send(1, 0, 1); code != http.StatusServiceUnavailable || rc.distinct() != 0 {
		t.Fatalf("while down: %d, %d counted", code, rc.distinct())
	}
	rc.up.Store(true)
	for _, s := range []struct{ id, thread, seq int }{{1, 0, 1}, {2, 1, 1}, {3, 0, 3}, {4, 0, 2}, {3, 0, 3}, {200, 1, 2}} {
		if code := send(s.id, s.thread, s.seq); code != http.StatusOK {
			t.Fatalf("delivery %d: %d", s.id, code)
		}
	}
	if rc.distinct() != 5 || rc.dups != 1 || rc.outOfOrder != 1 {
		t.Fatalf("distinct %d, dups %d, out of order %d; want 5, 1, 1", rc.distinct(), rc.dups, rc.outOfOrder)
	}
	if code := send(5, 9, 1); code != http.StatusBadRequest {
		t.Fatalf("a thread outside the backlog: %d", code)
	}
}
