package dispatch_test

import (
	"context"
	"errors"
	"testing"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/store"
)

// A person's data erased while their delivery is being attempted: whatever
// the bot answers, the delivery comes back neither as a retry nor as a
// dead letter, no rule job is armed for it, the lane goes on and no error
// names the person.
func TestErasedWhileAttempted(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"final answer", &adapters.Error{Status: 400, Err: errors.New(`"unknown field"`)}},
		{"retryable answer", &adapters.Error{Status: 503, Retry: true, Err: errors.New(`"busy"`)}},
		{"delivered", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, setup{})
			f.hooks.OnFailure = failoverJob
			release := make(chan struct{})
			f.answer(support, func(n int, d *adapters.Delivery) (adapters.Result, error) {
				if d.PSID == psid {
					<-release
					if tc.err != nil {
						return adapters.Result{}, tc.err
					}
				}
				return adapters.Result{Status: 200}, nil
			})
			f.start()
			f.add(event(support, psid, 1))
			if d := f.next(); d.PSID != psid {
				t.Fatalf("first attempt for %s", d.PSID)
			}
			erased, err := store.Erase(context.Background(), f.store, store.ThreadKey{Page: pageID, PSID: psid})
			if err != nil || erased.Pending != 1 {
				t.Fatalf("erase: %+v %v", erased, err)
			}
			close(release)
			if tc.err != nil {
				eventually(t, "the attempt settled", func() bool { return f.logged("delivery erased while it was attempted") == 1 })
			}
			// Another person's delivery goes through; the erased one is not
			// attempted again, even once its backoff is over.
			other := f.add(event(support, psid2, 2))
			if d := f.next(); d.ID != dlv(other[0]) {
				t.Fatalf("after the erase: attempt of %s, want %s", d.ID, dlv(other[0]))
			}
			f.clock.Set(f.clock.Now().Add(2 * maxBackoff))
			eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
			f.noAttempt()
			if dead := f.dead(); len(dead) != 0 {
				t.Errorf("dead letters after the erase: %+v", dead)
			}
			if j, err := f.job(psid); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a failover job for the erased person: %+v %v", j, err)
			}
			for _, e := range f.errs.List() {
				if e.PSID == psid {
					t.Errorf("recent error names the erased person: %+v", e)
				}
			}
			if n := f.logged("dead letter not stored") + f.logged("retry schedule not stored"); n != 0 {
				t.Errorf("%d store failures logged for an erased delivery", n)
			}
		})
	}
}
