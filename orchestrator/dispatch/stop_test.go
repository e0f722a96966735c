package dispatch_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
)

// A dispatcher told to stop lets the attempt in flight finish and marks
// it done; one whose work context ends too leaves it in the outbox,
// untouched, for the next dispatcher. Lanes not started stay pending.
func TestRunUntilStopsGracefully(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cancelAll bool // work ends while the attempt is in flight
		wantLeft  int  // deliveries left in the outbox of the two
	}{
		{name: "in flight finishes", wantLeft: 1},
		{name: "work cancelled", cancelAll: true, wantLeft: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, setup{concurrency: 1})
			inFlight, release := make(chan struct{}), make(chan struct{})
			f.bots[support].DeliverFunc = func(ctx context.Context, d *adapters.Delivery) (adapters.Result, error) {
				inFlight <- struct{}{}
				select {
				case <-release:
					return adapters.Result{Status: 200}, nil
				case <-ctx.Done():
					return adapters.Result{}, ctx.Err()
				}
			}
			dels := f.enqueue(event(support, psid, 1), event(support, psid2, 2))
			ds := f.build()
			if err := ds.Load(); err != nil {
				t.Fatal(err)
			}
			stop, stopNow := context.WithCancel(context.Background())
			work, cancelWork := context.WithCancel(context.Background())
			defer cancelWork()
			ran := make(chan error, 1)
			go func() { ran <- ds.RunUntil(stop, work) }()
			select {
			case <-inFlight:
			case <-time.After(10 * time.Second):
				t.Fatal("no delivery in flight in 10s")
			}
			stopNow()
			select {
			case err := <-ran:
				t.Fatalf("RunUntil returned (%v) with an attempt in flight", err)
			case <-time.After(20 * time.Millisecond): // a bound on what must not happen
			}
			if tc.cancelAll {
				cancelWork()
			} else {
				close(release)
			}
			select {
			case err := <-ran:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("RunUntil did not return in 10s")
			}
			left := f.outbox()
			if len(left) != tc.wantLeft || !slices.Contains(left, dels[1].ID) {
				t.Errorf("outbox %v, want %d left with %d among them", left, tc.wantLeft, dels[1].ID)
			}
			for _, id := range left {
				if s := f.stored(id); s.Attempts != 0 || s.LastError != "" {
					t.Errorf("delivery %d: attempts %d, error %q; want untouched", id, s.Attempts, s.LastError)
				}
			}
			f.noAttempt()
		})
	}
}
