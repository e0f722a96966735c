// Package storetest is the test suite every store.Store backend must pass.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// Opener opens the backend's store in dir; opening the same dir again must
// show what the last store committed.
type Opener func(tb testing.TB, dir string) store.Store

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	tests := map[string]func(*testing.T, Opener){
		"threads and timers":       testThreadsAndTimers,
		"lazy timers":              testLazyTimers,
		"listing":                  testListing,
		"invalid cursor":           testInvalidCursor,
		"history":                  testHistory,
		"dedup":                    testDedup,
		"outbox":                   testOutbox,
		"delivery pages":           testDeliveryPages,
		"lanes":                    testLanes,
		"later delivered":          testLaterDelivered,
		"journal retention":        testJournalRetention,
		"intents":                  testIntents,
		"jobs":                     testJobs,
		"concurrent updates":       testConcurrent,
		"a failing write is alone": testFailingWrite,
		"after commit":             testAfterCommit,
		"durable across reopen":    testReopen,
		"erase one person":         testErase,
		"erase while in flight":    testEraseInFlight,
		"erase while writing":      testEraseWhileWriting,
		"deletion requests":        testDeletions,
		"transcript":               testTranscript,
		"transcript search":        testTranscriptSearch,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) { fn(t, open) })
	}
}

func update(t testing.TB, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func view(t testing.TB, s store.Store, fn func(store.ReadTx) error) {
	t.Helper()
	if err := s.View(fn); err != nil {
		t.Fatal(err)
	}
}

func owned(page, psid, owner string, exp time.Time) store.Thread {
	return store.Thread{
		ThreadKey: store.ThreadKey{Page: page, PSID: psid},
		Thread:    statemachine.Thread{State: statemachine.Secondary, Owner: owner, ExpiresAt: exp},
	}
}

func testThreadsAndTimers(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	k := store.ThreadKey{Page: "1", PSID: "2"}
	view(t, s, func(tx store.ReadTx) error {
		if _, err := tx.Thread(k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing thread: %v", err)
		}
		if _, ok, _ := tx.NextTimer(); ok {
			t.Error("timer in an empty store")
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.PutThread(owned("1", "2", "A", t0.Add(24*time.Hour))) })
	update(t, s, func(tx store.Tx) error { return tx.PutThread(owned("1", "3", "A", t0.Add(2*time.Hour))) })
	// Moving an expiry moves its timer.
	update(t, s, func(tx store.Tx) error { return tx.PutThread(owned("1", "2", "B", t0.Add(time.Hour))) })
	view(t, s, func(tx store.ReadTx) error {
		got, err := tx.Thread(k)
		if err != nil || got.Owner != "B" || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("thread %+v %v", got, err)
		}
		next, ok, _ := tx.NextTimer()
		if !ok || !next.Equal(t0.Add(time.Hour)) {
			t.Errorf("next timer %v %v", next, ok)
		}
		due, _ := tx.DueTimers(t0.Add(90*time.Minute), 10)
		if len(due) != 1 || due[0] != k {
			t.Errorf("due %v", due)
		}
		due, _ = tx.DueTimers(t0.Add(25*time.Hour), 10)
		if len(due) != 2 {
			t.Errorf("due after 25h: %v (the moved timer must not linger)", due)
		}
		return nil
	})
	// Idle threads have no timer.
	update(t, s, func(tx store.Tx) error {
		return tx.PutThread(store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Idle}})
	})
	view(t, s, func(tx store.ReadTx) error {
		due, _ := tx.DueTimers(t0.Add(100*time.Hour), 10)
		if len(due) != 1 || due[0].PSID != "3" {
			t.Errorf("due %v", due)
		}
		return nil
	})
}

// A later expiry keeps the earlier timer; a rearm moves it.
func testLazyTimers(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	k := store.ThreadKey{Page: "1", PSID: "2"}
	update(t, s, func(tx store.Tx) error { return tx.PutThread(owned("1", "2", "A", t0.Add(time.Hour))) })
	update(t, s, func(tx store.Tx) error { return tx.PutThread(owned("1", "2", "A", t0.Add(5*time.Hour))) })
	due := func(at time.Time) (n int) {
		view(t, s, func(tx store.ReadTx) error {
			d, err := tx.DueTimers(at, 10)
			n = len(d)
			return err
		})
		return n
	}
	if due(t0.Add(time.Hour)) != 1 {
		t.Fatal("the earlier timer was moved by a later expiry")
	}
	update(t, s, func(tx store.Tx) error { return tx.RearmTimer(k) })
	if due(t0.Add(time.Hour)) != 0 || due(t0.Add(5*time.Hour)) != 1 {
		t.Fatal("rearm did not move the timer to the expiry")
	}
	// Release: the thread needs no timer.
	update(t, s, func(tx store.Tx) error {
		return tx.PutThread(store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Idle}})
	})
	if due(t0.Add(100*time.Hour)) != 0 {
		t.Fatal("an idle thread kept its timer")
	}
}

func testListing(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	update(t, s, func(tx store.Tx) error {
		for i := range 25 {
			owner := "A"
			if i%5 == 0 {
				owner = ""
			}
			th := owned(fmt.Sprintf("p%d", i%2), fmt.Sprintf("u%02d", i), owner, t0)
			if owner == "" {
				th.State, th.ExpiresAt = statemachine.Idle, time.Time{}
			}
			if err := tx.PutThread(th); err != nil {
				return err
			}
		}
		return nil
	})
	var all []store.Thread
	cursor := ""
	for range 10 {
		var page []store.Thread
		view(t, s, func(tx store.ReadTx) error {
			var err error
			page, cursor, err = tx.Threads(store.ThreadFilter{Page: "p1", Limit: 4, Cursor: cursor})
			return err
		})
		all = append(all, page...)
		if cursor == "" {
			break
		}
	}
	if len(all) != 12 {
		t.Fatalf("page p1: %d threads over pages, want 12", len(all))
	}
	for _, th := range all {
		if th.Page != "p1" {
			t.Fatalf("thread of page %s in p1's listing", th.Page)
		}
	}
	view(t, s, func(tx store.ReadTx) error {
		idle, _, _ := tx.Threads(store.ThreadFilter{Owner: "idle"})
		byA, _, _ := tx.Threads(store.ThreadFilter{Owner: "A", State: string(statemachine.Secondary)})
		counts, _ := tx.CountThreads()
		if len(idle) != 5 || len(byA) != 20 || counts["idle"] != 5 || counts["secondary"] != 20 {
			t.Errorf("idle %d, A %d, counts %v", len(idle), len(byA), counts)
		}
		if _, _, err := tx.Threads(store.ThreadFilter{Cursor: "!!"}); err == nil {
			t.Error("bad cursor accepted")
		}
		return nil
	})
}

func testHistory(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	a, b := store.ThreadKey{Page: "1", PSID: "2"}, store.ThreadKey{Page: "1", PSID: "20"}
	update(t, s, func(tx store.Tx) error {
		for i := range 3 {
			if err := tx.AppendHistory(a, store.HistoryEntry{Event: fmt.Sprint("a", i)}); err != nil {
				return err
			}
			if err := tx.AppendHistory(b, store.HistoryEntry{Event: fmt.Sprint("b", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.ReadTx) error {
		h, _ := tx.History(a)
		if len(h) != 3 || h[0].Event != "a0" || h[2].Event != "a2" {
			t.Errorf("history of a: %+v (a PSID that prefixes another must not mix)", h)
		}
		return nil
	})
}

func testDedup(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	const window = 36 * time.Hour
	sent := t0.Add(-2 * time.Second) // the event's own time, before it arrives
	mark := func(key string, at, now time.Time) (fresh bool) {
		update(t, s, func(tx store.Tx) error {
			var err error
			fresh, err = tx.MarkSeen(key, at, now, window)
			return err
		})
		return fresh
	}
	if !mark("m:1", sent, t0) || mark("m:1", sent, t0.Add(35*time.Hour)) {
		t.Fatal("a redelivery within the window was not caught")
	}
	if !mark("m:2", sent, t0) {
		t.Fatal("a new key was not fresh")
	}
	if mark("m:2", sent, t0.Add(window)) {
		t.Fatal("a mark was forgotten before its window ended")
	}
	if !mark("m:3", time.Time{}, t0) || mark("m:3", time.Time{}, t0.Add(time.Hour)) {
		t.Fatal("an event without a time of its own was not deduplicated")
	}
	// Events come out of order: an older one after newer ones.
	if !mark("m:4", sent.Add(-time.Hour), t0.Add(time.Minute)) || mark("m:4", sent.Add(-time.Hour), t0.Add(2*time.Minute)) {
		t.Fatal("an event older than the last marks was not deduplicated")
	}
	var days int
	update(t, s, func(tx store.Tx) error {
		var err error
		days, err = tx.SweepSeen(t0.Add(20*time.Hour), window)
		return err
	})
	if days != 0 || mark("m:1", sent, t0.Add(21*time.Hour)) {
		t.Fatalf("sweep dropped %d live days", days)
	}
	update(t, s, func(tx store.Tx) error {
		var err error
		days, err = tx.SweepSeen(t0.Add(4*24*time.Hour), window)
		return err
	})
	if days != 1 || !mark("m:1", sent, t0.Add(4*24*time.Hour)) {
		t.Fatalf("sweep after 4 days dropped %d days, and m:1 is not new again", days)
	}
}

// The journal forgets what is older than its retention, except events a
// pending delivery still reads; a dead letter keeps its own copy.
func testJournalRetention(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	var seqs []uint64
	var shared, dying uint64 // deliveries reading entries 3 and 2
	update(t, s, func(tx store.Tx) error {
		for i := range 6 {
			j := &store.JournalEntry{ReceivedAt: t0.Add(time.Duration(i) * time.Hour), App: "a", Event: []byte(fmt.Sprintf(`{"n":%d}`, i))}
			if err := tx.AppendJournal(j); err != nil {
				return err
			}
			seqs = append(seqs, j.Seq)
		}
		for _, i := range []int{2, 3} {
			d := &store.Delivery{App: "a", Page: "1", PSID: "2", Event: []byte(fmt.Sprintf(`{"n":%d}`, i)), JournalSeq: seqs[i], SharesEvent: true}
			if err := tx.Enqueue(d); err != nil {
				return err
			}
			dying, shared = shared, d.ID
		}
		return nil
	})
	prune := func(before time.Time, limit int) (n int) {
		update(t, s, func(tx store.Tx) error {
			var err error
			n, err = tx.PruneJournal(before, limit)
			return err
		})
		return n
	}
	if n := prune(t0.Add(5*time.Hour), 1); n != 1 {
		t.Fatalf("pruned %d with a limit of 1", n)
	}
	if n := prune(t0.Add(5*time.Hour), 100); n != 1 {
		t.Fatalf("pruned %d, want 1: entry 2 is read by a pending delivery", n)
	}
	update(t, s, func(tx store.Tx) error {
		d, err := tx.Delivery(dying)
		if err != nil {
			return err
		}
		return tx.KillDelivery(d)
	})
	if n := prune(t0.Add(5*time.Hour), 100); n != 1 {
		t.Fatalf("pruned %d, want 1 (entry 2, its delivery dead with a copy; entry 3 still read)", n)
	}
	update(t, s, func(tx store.Tx) error { return tx.DeleteDelivery(shared) })
	if n := prune(t0.Add(5*time.Hour), 100); n != 2 {
		t.Fatalf("pruned %d, want entries 3 and 4; 5 is not old enough", n)
	}
	view(t, s, func(tx store.ReadTx) error {
		dead, err := tx.DeadDeliveries(0, 10)
		if err != nil || len(dead) != 1 || string(dead[0].Event) != `{"n":2}` {
			t.Errorf("dead letter after its journal entry went: %+v %v", dead, err)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		d, err := tx.ReviveDelivery(dying, t0)
		if err != nil || string(d.Event) != `{"n":2}` {
			return fmt.Errorf("revived %+v: %v", d, err)
		}
		return nil
	})
}

func testOutbox(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	var ids []uint64
	update(t, s, func(tx store.Tx) error {
		for i := range 3 {
			d := &store.Delivery{App: "a", Page: "1", PSID: fmt.Sprint(i), Event: []byte(`{"x":1}`)}
			if err := tx.Enqueue(d); err != nil {
				return err
			}
			ids = append(ids, d.ID)
		}
		j := &store.JournalEntry{App: "a", Event: []byte(`{}`)}
		if err := tx.AppendJournal(j); err != nil || j.Seq == 0 {
			return fmt.Errorf("journal seq %d: %v", j.Seq, err)
		}
		return nil
	})
	if ids[0] >= ids[1] || ids[1] >= ids[2] {
		t.Fatalf("ids not increasing: %v", ids)
	}
	update(t, s, func(tx store.Tx) error {
		d, err := tx.Delivery(ids[0])
		if err != nil {
			return err
		}
		d.Attempts, d.LastError = 3, "bot down"
		if err := tx.UpdateDelivery(d); err != nil {
			return err
		}
		if err := tx.KillDelivery(d); err != nil {
			return err
		}
		return tx.DeleteDelivery(ids[1])
	})
	view(t, s, func(tx store.ReadTx) error {
		pending, _ := tx.PendingDeliveries(0, 0)
		dead, _ := tx.DeadDeliveries(0, 10)
		if len(pending) != 1 || pending[0].ID != ids[2] || len(dead) != 1 || dead[0].Status != store.DeliveryDead || dead[0].LastError != "bot down" {
			t.Errorf("pending %+v dead %+v", pending, dead)
		}
		if string(pending[0].Event) != `{"x":1}` {
			t.Errorf("event %s", pending[0].Event)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		d, err := tx.ReviveDelivery(ids[0], t0)
		if err != nil || d.Attempts != 0 || d.Status != store.DeliveryPending {
			return fmt.Errorf("revive: %+v %v", d, err)
		}
		if _, err := tx.ReviveDelivery(ids[1], t0); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("revive a delivered one: %v", err)
		}
		return nil
	})
	view(t, s, func(tx store.ReadTx) error {
		pending, _ := tx.PendingDeliveries(0, 0)
		if len(pending) != 2 || pending[0].ID != ids[0] {
			t.Errorf("after revive: %+v (outbox keeps enqueue order)", pending)
		}
		return nil
	})
}

func testIntents(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	k := store.ThreadKey{Page: "1", PSID: "2"}
	update(t, s, func(tx store.Tx) error {
		return tx.PutIntent(store.Intent{ThreadKey: k, App: "A", Op: "pass", Target: "B", At: t0})
	})
	view(t, s, func(tx store.ReadTx) error {
		in, _ := tx.Intents()
		if len(in) != 1 || in[0].ThreadKey != k || in[0].Target != "B" {
			t.Errorf("intents %+v", in)
		}
		if one, err := tx.Intent(k); err != nil || one.App != "A" {
			t.Errorf("intent %+v %v", one, err)
		}
		if _, err := tx.OneTimeToken("nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown token: %v", err)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		return tx.PutOneTimeToken(store.OneTimeToken{Token: "OTN_1", Page: "1", PSID: "2", Created: t0})
	})
	update(t, s, func(tx store.Tx) error {
		o, err := tx.OneTimeToken("OTN_1")
		if err != nil || o.PSID != "2" || !o.UsedAt.IsZero() {
			return fmt.Errorf("token %+v %v", o, err)
		}
		o.UsedAt = t0.Add(time.Hour)
		return tx.PutOneTimeToken(o)
	})
	view(t, s, func(tx store.ReadTx) error {
		if o, _ := tx.OneTimeToken("OTN_1"); !o.UsedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("use not kept: %+v", o)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.DeleteIntent(k) })
	view(t, s, func(tx store.ReadTx) error {
		if in, _ := tx.Intents(); len(in) != 0 {
			t.Errorf("intents %+v", in)
		}
		return nil
	})
}

func testConcurrent(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			update(t, s, func(tx store.Tx) error {
				return tx.Enqueue(&store.Delivery{App: "a", Page: "1", PSID: fmt.Sprint(i)})
			})
		}()
	}
	wg.Wait()
	view(t, s, func(tx store.ReadTx) error {
		if p, _ := tx.PendingDeliveries(0, 0); len(p) != 64 {
			t.Errorf("%d of 64 concurrent writes committed", len(p))
		}
		return nil
	})
}

func testFailingWrite(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(context.Background(), func(tx store.Tx) error {
				if err := tx.Enqueue(&store.Delivery{App: "a", PSID: fmt.Sprint(i)}); err != nil {
					return err
				}
				if i%4 == 0 {
					return boom // its enqueue must not survive
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%4 == 0) != errors.Is(err, boom) {
			t.Errorf("write %d: %v", i, err)
		}
	}
	view(t, s, func(tx store.ReadTx) error {
		if p, _ := tx.PendingDeliveries(0, 0); len(p) != 15 {
			t.Errorf("%d deliveries, want the 15 of the writes that succeeded", len(p))
		}
		return nil
	})
}

func testReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	s := open(t, dir)
	update(t, s, func(tx store.Tx) error { return tx.PutThread(owned("1", "2", "A", t0)) })
	first := &store.Delivery{App: "a"}
	update(t, s, func(tx store.Tx) error { return tx.Enqueue(first) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	view(t, s, func(tx store.ReadTx) error {
		th, err := tx.Thread(store.ThreadKey{Page: "1", PSID: "2"})
		p, _ := tx.PendingDeliveries(0, 0)
		if err != nil || th.Owner != "A" || len(p) != 1 {
			t.Errorf("after reopen: %+v %v, %d pending", th, err, len(p))
		}
		return nil
	})
	// Delivery ids keep increasing across restarts (a store may leave
	// gaps: PostgreSQL's reserves them in blocks).
	update(t, s, func(tx store.Tx) error {
		d := &store.Delivery{App: "a"}
		if err := tx.Enqueue(d); err != nil || d.ID <= first.ID {
			return fmt.Errorf("id after reopen %d, the first %d: %v", d.ID, first.ID, err)
		}
		return nil
	})
}
