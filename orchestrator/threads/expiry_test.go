package threads_test

import (
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// runExpiry runs the expiry loop until the test ends.
func (f *fixture) runExpiry() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.RunExpiry(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Error(err)
		}
	})
}

func TestExpiryLapsesControl(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID)
	f.runExpiry()
	f.clock.Advance(23 * time.Hour)
	f.svc.WakeExpiry()
	if th, _, _ := f.thread(key(page)); th.Owner != billingID {
		t.Fatalf("lapsed early: %+v", th.Thread)
	}
	f.clock.Advance(2 * time.Hour)
	f.eventually("control lapsed", func() bool { th, _, _ := f.thread(key(page)); return th.Owner == "" })
	th, hist, _ := f.thread(key(page))
	if th.State != statemachine.Idle || len(hist) != 1 || hist[0].Cause != store.CauseExpiry || hist[0].Event != "expire" {
		t.Fatalf("record %+v history %+v", th.Thread, hist)
	}
}

// A timer that fires early (the person wrote since, so control lasts
// longer) moves to the new expiry instead of lapsing control.
func TestExpiryRearmsAnEarlyTimer(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID)
	// The person writes 20 h later: control now lasts until 44 h.
	f.clock.Advance(20 * time.Hour)
	p := f.top.Page(page)
	if err := f.store.Update(context.Background(), func(tx store.Tx) error {
		th, err := tx.Thread(key(page))
		if err != nil {
			return err
		}
		th.Thread = statemachine.Touch(p.SM, th.Thread, f.clock.Now())
		return tx.PutThread(th)
	}); err != nil {
		t.Fatal(err)
	}
	f.runExpiry()
	f.clock.Advance(5 * time.Hour) // the first timer (24 h) fires
	f.eventually("the timer moved", func() bool {
		var next time.Time
		_ = f.store.View(func(tx store.ReadTx) error { next, _, _ = tx.NextTimer(); return nil })
		return next.Equal(f.clock.Now().Add(19 * time.Hour))
	})
	if th, _, _ := f.thread(key(page)); th.Owner != billingID {
		t.Fatalf("lapsed: %+v", th.Thread)
	}
	f.clock.Advance(20 * time.Hour)
	f.eventually("control lapsed", func() bool { th, _, _ := f.thread(key(page)); return th.Owner == "" })
}

// A thread of a page that left the config loses its timer, or the loop
// would find it due for ever.
func TestExpiryDropsTimersOfUnknownPages(t *testing.T) {
	f := newFixture(t)
	gone := store.ThreadKey{Page: "999999999999999", PSID: psid}
	f.put(gone, billingID)
	f.runExpiry()
	f.clock.Advance(25 * time.Hour)
	f.eventually("the timer dropped", func() bool {
		var ok bool
		_ = f.store.View(func(tx store.ReadTx) error { _, ok, _ = tx.NextTimer(); return nil })
		return !ok
	})
	if th, _, _ := f.thread(gone); th.Owner != billingID || !th.ExpiresAt.IsZero() {
		t.Fatalf("record %+v", th.Thread)
	}
}

// A thread whose expiry cannot be written is skipped, shown, and tried
// again after a backoff; the loop does not spin on it.
func TestExpirySkipsARecordThatFails(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID)
	f.store.FailUpdates(1, nil)
	f.runExpiry()
	f.clock.Advance(25 * time.Hour)
	f.eventually("the failure shown", func() bool { return len(f.errorsOf("expiry")) == 1 })
	if th, _, _ := f.thread(key(page)); th.Owner != billingID {
		t.Fatalf("record %+v", th.Thread)
	}
	f.clock.Advance(time.Second) // the backoff
	f.eventually("control lapsed after the failure", func() bool { th, _, _ := f.thread(key(page)); return th.Owner == "" })
	if n := len(f.errorsOf("expiry")); n != 1 {
		t.Fatalf("%d expiry errors", n)
	}
}

// A store that cannot be read is asked again with backoff, whatever wakes
// the loop meanwhile.
func TestExpiryBacksOffWhenTheStoreFails(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID)
	f.clock.Advance(25 * time.Hour)
	f.store.FailViews(-1, nil)
	_, before := f.store.Calls()
	f.runExpiry()
	f.eventually("the first read", func() bool { _, v := f.store.Calls(); return v > before })
	for range 100 {
		f.svc.WakeExpiry()
	}
	// Rings are answered at once when the loop listens: give it the time
	// a spinning loop would need to show (nothing announces "idle").
	time.Sleep(50 * time.Millisecond)
	if _, v := f.store.Calls(); v-before > 2 {
		t.Fatalf("%d reads of a failing store in a backoff", v-before)
	}
	f.store.Heal()
	f.clock.Advance(time.Second)
	f.eventually("control lapsed once the store answers", func() bool { th, _, _ := f.thread(key(page)); return th.Owner == "" })
}
