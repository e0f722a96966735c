package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/batonhq/baton/store"
)

// AfterCommit's functions run once per committed write, whoever waits: a
// write whose function failed runs none, the others in its group run
// theirs once, and a caller that stopped waiting still gets its effects.
func testAfterCommit(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	boom := errors.New("boom")
	var mu sync.Mutex
	ran := map[int]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%5 == 1 { // gives up at once: its write may still commit
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			err := s.Update(ctx, func(tx store.Tx) error {
				if err := tx.Enqueue(&store.Delivery{App: "a", PSID: fmt.Sprint(i)}); err != nil {
					return err
				}
				tx.AfterCommit(func() { mu.Lock(); ran[i]++; mu.Unlock() })
				if i%4 == 0 {
					return boom
				}
				return nil
			})
			if i%4 == 0 && !errors.Is(err, boom) && !errors.Is(err, context.Canceled) {
				t.Errorf("write %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	var pending []store.Delivery
	// A sync write flushes the group commit: every queued write is done.
	update(t, s, func(tx store.Tx) error { return nil })
	view(t, s, func(tx store.ReadTx) error {
		var err error
		pending, err = tx.PendingDeliveries(0, 0)
		return err
	})
	committed := map[string]bool{}
	for _, d := range pending {
		committed[d.PSID] = true
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 40 {
		want := 0
		if committed[fmt.Sprint(i)] {
			want = 1
		}
		if i%4 == 0 && committed[fmt.Sprint(i)] {
			t.Errorf("write %d failed but committed", i)
		}
		if ran[i] != want {
			t.Errorf("write %d (committed %v): its after-commit function ran %d times", i, committed[fmt.Sprint(i)], ran[i])
		}
	}
}
