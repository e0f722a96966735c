package dispatch_test

import (
	"slices"
	"testing"

	"github.com/batonhq/baton/store"
)

// One replica of several delivers a thread only while it holds the
// thread's shard when the request leaves (Deps.Owns), not only when it
// read the delivery: a lease can run out between the two (the cluster
// chaos test saw a replica resumed from SIGSTOP deliver, after its lease
// ran out, a delivery it had read before the pause). The lane waits
// instead, its delivery stays in the outbox for the shard's owner, and
// the other threads go on; alone or in a batch.
func TestNotOwnedNotDelivered(t *testing.T) {
	for _, batch := range []string{"", "{max: 3}"} {
		t.Run("batch "+batch, func(t *testing.T) {
			f := newFixture(t, setup{batch: batch})
			f.owns = func(k store.ThreadKey) error {
				if k.PSID == psid2 {
					return &store.NotOwnedError{Key: k, Shard: 7}
				}
				return nil
			}
			f.start()
			dels := f.add(event(support, psid, 1), event(support, psid2, 2))
			if d := f.next(); d.PSID != psid {
				t.Fatalf("delivered %s's, want only %s's", d.PSID, psid)
			}
			if at, want := f.waitAt(), start.Add(maxBackoff); !at.Equal(want) {
				t.Fatalf("the lane not owned waits until %s, want %s", at, want)
			}
			f.noAttempt()
			if ids := f.outbox(); !slices.Contains(ids, dels[1].ID) {
				t.Fatalf("outbox %v: the delivery not owned is gone", ids)
			}
		})
	}
}
