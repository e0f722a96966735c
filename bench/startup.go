package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// FillThreads writes n thread records (owned, with an expiry timer, on
// pages of the given ids) and one history entry each, in transactions of
// batch records, as a long-running Baton would have accumulated them.
func FillThreads(ctx context.Context, s store.Store, pages []string, owner string, n, batch int, now time.Time) error {
	for start := 0; start < n; start += batch {
		end := min(n, start+batch)
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := start; i < end; i++ {
				k := store.ThreadKey{Page: pages[i%len(pages)], PSID: PSID(i)}
				th := store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Primary, Owner: owner,
					ExpiresAt: now.Add(24 * time.Hour), LastUserMessageAt: now, Version: 3}, UpdatedAt: now}
				if err := tx.PutThread(th); err != nil {
					return err
				}
				if err := tx.AppendHistory(k, store.HistoryEntry{At: now, Event: "pass_thread_control", To: owner, By: "meta", Cause: store.CauseWebhook}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("fill threads %d-%d: %w", start, end, err)
		}
	}
	return nil
}

// PSID is the person id bench uses for thread i.
func PSID(i int) string { return strconv.Itoa(7_000_000_000_000_000 + i) }
