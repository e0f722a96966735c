package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/store"
)

// failoverJob is what a test's OnFailure hook writes through the failed
// attempt's transaction: a job recording the delivery as the hook saw it.
func failoverJob(tx store.Tx, d *store.Delivery) error {
	reason := "retry"
	if !d.DeadAt.IsZero() {
		reason = "dead"
	}
	return tx.PutJob(store.Job{ThreadKey: store.ThreadKey{Page: d.Page, PSID: d.PSID}, Rule: "failover",
		At: d.NextAttempt, App: d.App, Reason: reason, Metadata: d.LastError, Created: d.CreatedAt, Attempts: d.Attempts})
}

func (f *fixture) job(psid string) (store.Job, error) {
	var j store.Job
	err := f.store.Store.View(func(tx store.ReadTx) error {
		var err error
		j, err = tx.Job(store.ThreadKey{Page: pageID, PSID: psid}, "failover")
		return err
	})
	return j, err
}

// failThen answers with err to the first n calls, then succeeds.
func failThen(n int, err error) func(int, *adapters.Delivery) (adapters.Result, error) {
	return func(call int, _ *adapters.Delivery) (adapters.Result, error) {
		if call <= n {
			return adapters.Result{}, err
		}
		return adapters.Result{Status: 200}, nil
	}
}

func TestRetryableFailure(t *testing.T) {
	f := newFixture(t, setup{})
	f.hooks.OnFailure = failoverJob
	f.answer(support, failThen(1, errors.New("dial tcp: connection refused"))) // a transport error is retried
	f.start()
	del := f.add(event(support, psid, 1))[0]
	if d := f.next(); d.Attempt != 1 {
		t.Fatalf("first attempt numbered %d", d.Attempt)
	}
	at := f.waitAt()
	f.nextWake()

	s := f.stored(del.ID)
	if s.Attempts != 1 || s.LastError != "dial tcp: connection refused" || s.Status != store.DeliveryPending {
		t.Errorf("stored after the failure: attempts %d, error %q, status %s", s.Attempts, s.LastError, s.Status)
	}
	if wait := s.NextAttempt.Sub(start); wait < backoff/2 || wait > backoff {
		t.Errorf("next attempt in %v, want within [%v, %v]", wait, backoff/2, backoff)
	}
	if !at.Equal(s.NextAttempt) {
		t.Errorf("lane waits until %v, stored next attempt %v", at, s.NextAttempt)
	}
	j, err := f.job(psid)
	if err != nil {
		t.Fatalf("the OnFailure hook's job: %v", err)
	}
	if j.Reason != "retry" || j.Attempts != 1 || !j.At.Equal(s.NextAttempt) || j.Metadata != s.LastError {
		t.Errorf("OnFailure saw %+v, want the rescheduled delivery", j)
	}
	if n := f.count(support, "retry"); n != 1 {
		t.Errorf("retry counter = %d, want 1", n)
	}
	if _, failing := f.health.FailingSince(support); !failing {
		t.Error("bot not failing after a failed attempt")
	}

	f.clock.Set(at.Add(-time.Millisecond))
	f.noAttempt() // the lane waits on a channel the clock has not fired
	f.clock.Set(at)
	if d := f.next(); d.ID != dlv(del) || d.Attempt != 2 {
		t.Errorf("retry: %s attempt %d, want %s attempt 2", d.ID, d.Attempt, dlv(del))
	}
	f.nextActions()
	if app := <-f.recovered; app != support {
		t.Errorf("OnRecovered(%s), want %s", app, support)
	}
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
	if n := f.count(support, "delivered"); n != 1 {
		t.Errorf("delivered counter = %d, want 1", n)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryAfter time.Duration
		min, max   time.Duration // of the wait
	}{
		{"longer than the backoff", 30 * time.Second, 30 * time.Second, 30 * time.Second},
		{"shorter than the backoff", 100 * time.Millisecond, backoff / 2, backoff},
		// A bot cannot hold its lane for longer than max_backoff.
		{"longer than max_backoff", 10 * time.Minute, maxBackoff, maxBackoff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, setup{})
			f.answer(support, failThen(1, &adapters.Error{Status: 503, Retry: true, RetryAfter: tc.retryAfter, Err: errors.New(`"overloaded"`)}))
			f.start()
			del := f.add(event(support, psid, 1))[0]
			f.next()
			at := f.waitAt()
			s := f.stored(del.ID)
			if wait := s.NextAttempt.Sub(start); wait < tc.min || wait > tc.max {
				t.Errorf("next attempt in %v, want within [%v, %v]", wait, tc.min, tc.max)
			}
			if !at.Equal(s.NextAttempt) {
				t.Errorf("lane waits until %v, stored next attempt %v", at, s.NextAttempt)
			}
			f.clock.Set(at.Add(-time.Second))
			f.noAttempt()
			f.clock.Set(at)
			if d := f.next(); d.Attempt != 2 {
				t.Errorf("attempt %d, want 2", d.Attempt)
			}
		})
	}
}

func TestDeadLetter(t *testing.T) {
	badRequest := &adapters.Error{Status: 400, Err: errors.New(`"unknown field"`)}
	busy := &adapters.Error{Status: 503, Retry: true, Err: errors.New(`"busy"`)}
	for _, tc := range []struct {
		name     string
		limit    int
		err      error
		attempts int // when it dies
	}{
		{"not retryable", 0, badRequest, 1},
		{"attempt limit", 2, busy, 2},
		{"default attempt limit", 0, busy, maxAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, setup{maxAttempts: tc.limit})
			f.hooks.OnFailure = failoverJob
			f.start()
			dels := f.enqueue(event(support, psid, 1), event(support, psid, 2))
			f.answer(support, func(_ int, d *adapters.Delivery) (adapters.Result, error) {
				if d.ID == dlv(dels[0]) {
					return adapters.Result{}, tc.err
				}
				return adapters.Result{Status: 200}, nil
			})
			f.ds.Add(dels)
			for i := 1; i <= tc.attempts; i++ {
				if d := f.next(); d.ID != dlv(dels[0]) || d.Attempt != i {
					t.Fatalf("got %s attempt %d, want %s attempt %d", d.ID, d.Attempt, dlv(dels[0]), i)
				}
				if i < tc.attempts {
					f.reach()
				}
			}
			// The lane goes on once the dead letter is written.
			if d := f.next(); d.ID != dlv(dels[1]) || d.Attempt != 1 {
				t.Fatalf("after the dead letter: %s attempt %d, want %s attempt 1", d.ID, d.Attempt, dlv(dels[1]))
			}
			dead := f.dead()
			if len(dead) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dead))
			}
			d := dead[0]
			if d.ID != dels[0].ID || d.Status != store.DeliveryDead || d.Attempts != tc.attempts || d.LastError != tc.err.Error() ||
				!d.DeadAt.Equal(f.clock.Now()) || string(d.Event) != string(dels[0].Event) {
				t.Errorf("dead letter %+v", d)
			}
			if n := f.count(support, "dead"); n != 1 {
				t.Errorf("dead counter = %d, want 1", n)
			}
			if n := f.count(support, "retry"); n != tc.attempts-1 {
				t.Errorf("retry counter = %d, want %d", n, tc.attempts-1)
			}
			errs := f.errs.List()
			want := fmt.Sprintf("delivery %d dead after %d attempt(s): %v", dels[0].ID, tc.attempts, tc.err)
			if len(errs) != 1 || errs[0].Kind != "delivery" || errs[0].App != support || errs[0].Page != pageID || errs[0].PSID != psid || errs[0].Message != want {
				t.Errorf("recent errors %+v, want one of kind delivery: %s", errs, want)
			}
			if j, err := f.job(psid); err != nil || j.Reason != "dead" || j.Attempts != tc.attempts {
				t.Errorf("OnFailure in the dead letter's transaction: job %+v, %v", j, err)
			}
			eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
		})
	}
}

func TestRetryDeadLetter(t *testing.T) {
	f := newFixture(t, setup{})
	f.answer(support, failThen(1, &adapters.Error{Status: 400, Err: errors.New(`"bad"`)}))
	f.start()
	del := f.add(event(support, psid, 1))[0]
	f.next()
	f.nextWake() // after the dead letter's write
	if dead := f.dead(); len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	f.clock.Advance(time.Hour)

	got, err := f.ds.Retry(context.Background(), del.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != del.ID || got.Status != store.DeliveryPending || got.Attempts != 0 || !got.NextAttempt.Equal(f.clock.Now()) || string(got.Event) != string(del.Event) {
		t.Errorf("revived %+v", got)
	}
	if d := f.next(); d.ID != dlv(del) || d.Attempt != 1 || d.Retried == nil || !d.Retried.DeadAt.Equal(start) || d.Retried.LaterDelivered {
		t.Errorf("after Retry: %s attempt %d, retried %+v; want %s attempt 1, retried, dead at %v, nothing delivered after it", d.ID, d.Attempt, d.Retried, dlv(del), start)
	}
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
	if n := len(f.dead()); n != 0 {
		t.Errorf("%d dead letters after the retry, want 0", n)
	}
	for _, id := range []uint64{del.ID, 999} {
		if _, err := f.ds.Retry(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Retry(%d) = %v, want ErrNotFound", id, err)
		}
	}
}

// TestRetryCancelledRequest: the admin API calls Retry with the request's
// context. A write the store has queued may still commit after the
// context ends (store.Update), and then the revived delivery is in the
// outbox but in no lane.
func TestRetryCancelledRequest(t *testing.T) {
	f := newFixture(t, setup{})
	f.answer(support, failThen(1, &adapters.Error{Status: 400, Err: errors.New(`"bad"`)}))
	f.start()
	del := f.add(event(support, psid, 1))[0]
	f.next()
	f.nextWake()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.ds.Retry(ctx, del.ID)
	// Store writes commit in order: this one returns after Retry's.
	if err := f.store.Update(context.Background(), func(store.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err == nil {
		f.next()
		return
	}
	if dead := f.dead(); len(dead) != 1 {
		t.Errorf("Retry failed (%v) but the delivery is no longer dead: outbox %v, %d queued", err, f.outbox(), f.ds.Pending())
	}
}

func TestStoreFailures(t *testing.T) {
	t.Run("retry not stored", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			fail func(f *fixture) // makes the retry's write fail
		}{
			{"store fails", func(f *fixture) { f.store.FailUpdates(1, nil) }},
			{"OnFailure fails", func(f *fixture) {
				f.hooks.OnFailure = func(store.Tx, *store.Delivery) error { return errors.New("job refused") }
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, setup{})
				f.answer(support, failThen(1, errors.New("connection reset")))
				del := f.enqueue(event(support, psid, 1))[0]
				tc.fail(f)
				f.start()
				f.next()
				at := f.waitAt()
				if s := f.stored(del.ID); s.Attempts != 0 || s.LastError != "" {
					t.Errorf("stored after a failed write: attempts %d, error %q; want nothing written", s.Attempts, s.LastError)
				}
				if _, err := f.job(psid); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("job after a failed write: %v, want none", err)
				}
				if n := f.logged("retry schedule not stored"); n != 1 {
					t.Errorf("%d \"retry schedule not stored\" logs, want 1", n)
				}
				select {
				case <-f.wakes:
					t.Error("Wake called after a write that did not commit")
				default:
				}
				f.clock.Set(at)
				if d := f.next(); d.ID != dlv(del) || d.Attempt != 2 {
					t.Errorf("retry: %s attempt %d, want %s attempt 2", d.ID, d.Attempt, dlv(del))
				}
				eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
			})
		}
	})

	t.Run("dead letter not stored", func(t *testing.T) {
		f := newFixture(t, setup{})
		f.start()
		dels := f.enqueue(event(support, psid, 1), event(support, psid, 2))
		f.answer(support, func(_ int, d *adapters.Delivery) (adapters.Result, error) {
			if d.ID == dlv(dels[0]) {
				return adapters.Result{}, &adapters.Error{Status: 410, Err: errors.New(`"gone"`)}
			}
			return adapters.Result{Status: 200}, nil
		})
		f.store.FailUpdates(1, nil)
		f.ds.Add(dels)
		f.next()
		if d := f.next(); d.ID != dlv(dels[1]) {
			t.Fatalf("lane held up: got %s, want %s", d.ID, dlv(dels[1]))
		}
		if n := f.logged("dead letter not stored"); n != 1 {
			t.Errorf("%d \"dead letter not stored\" logs, want 1", n)
		}
		eventually(t, "the second delivery marked done", func() bool { return slices.Equal(f.outbox(), []uint64{dels[0].ID}) })
		if s := f.stored(dels[0].ID); s.Status != store.DeliveryPending || s.Attempts != 0 {
			t.Errorf("unrecorded dead letter: status %s, attempts %d; want pending as before", s.Status, s.Attempts)
		}
		if n := len(f.dead()); n != 0 {
			t.Errorf("%d dead letters, want 0", n)
		}
		if n := f.count(support, "dead"); n != 1 {
			t.Errorf("dead counter = %d, want 1", n)
		}
	})

	t.Run("done mark not stored", func(t *testing.T) {
		f := newFixture(t, setup{})
		f.start()
		del := f.enqueue(event(support, psid, 1))[0]
		f.store.FailUpdates(1, nil)
		f.ds.Add([]store.Delivery{del})
		if d := f.next(); d.ID != dlv(del) {
			t.Fatalf("got %s", d.ID)
		}
		const msg = "delivered but not marked done; they will be delivered again"
		eventually(t, "the failed done mark logged", func() bool { return f.logged(msg) == 1 })
		if got := f.outbox(); !slices.Equal(got, []uint64{del.ID}) {
			t.Errorf("outbox = %v, want the delivery still there", got)
		}
		f.stop()
		f.start() // a restart reads the outbox again
		if d := f.next(); d.ID != dlv(del) || d.Attempt != 1 {
			t.Errorf("after the restart: %s attempt %d, want %s again", d.ID, d.Attempt, dlv(del))
		}
		eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
		if n := f.count(support, "delivered"); n != 2 {
			t.Errorf("delivered counter = %d, want 2", n)
		}
	})
}

// TestLogsNameTheDelivery checks the retry log carries the delivery and
// its error, so an operator can find it.
func TestLogsNameTheDelivery(t *testing.T) {
	f := newFixture(t, setup{})
	f.answer(support, failThen(1, errors.New("timeout")))
	f.start()
	del := f.add(event(support, psid, 1))[0]
	f.next()
	f.waitAt()
	entries := f.logs.FilterMessage("delivery failed, will retry").All()
	if len(entries) != 1 {
		t.Fatalf("%d retry logs, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	if fields["delivery"] != del.ID || fields["app"] != support || fields["attempt"] != int64(1) || !strings.Contains(fmt.Sprint(fields["error"]), "timeout") {
		t.Errorf("retry log fields %v", fields)
	}
}

// TestRetryLoggedWhenErrorChanges: STYLE.md 21 asks for a retry to be
// logged when its error changes, not on every attempt.
func TestRetryLoggedWhenErrorChanges(t *testing.T) {
	f := newFixture(t, setup{maxAttempts: 5})
	f.answer(support, failThen(3, errors.New("timeout")))
	f.start()
	f.add(event(support, psid, 1))
	for range 3 {
		f.next()
		f.reach()
	}
	f.next()
	if n := f.logged("delivery failed, will retry"); n != 1 {
		t.Errorf("%d retry logs for three failures with one error, want 1", n)
	}
}
