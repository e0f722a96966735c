package ingress

import (
	"context"
	"sync"
	"time"
)

// Budget bounds the bytes of webhook bodies held in memory at once
// (webhooks.max_inflight_bytes). Each request takes its share before its
// body is read and gives it back when it is answered. The listener's
// per-connection limits bound each stranger's time; this bounds what all
// of them hold together: a thousand clients each sending most of a 1 MB
// body would otherwise hold a gigabyte.
//
// A share is the request's Content-Length (what it can make Baton
// read), or max_body when it sent none. Meta's webhooks are a few KB;
// strangers' promises can be a megabyte each, and Baton cannot tell them
// apart before the body (and its signature) is read. So small bodies must
// not queue behind large ones:
//   - the budget is not first come, first served: a request takes a
//     share as soon as one that size is free, even while a larger one
//     waits;
//   - large shares (over SmallBody) together hold at most three quarters
//     of the budget: the last quarter is for small bodies only, so that
//     strangers promising max_body cannot fill it all.
type Budget struct {
	max      int64
	largeMax int64 // what large shares may hold together

	mu    sync.Mutex
	used  int64         // every share
	large int64         // the shares over SmallBody
	freed chan struct{} // closed (and replaced) when a share is given back
}

// SmallBody is the largest share that may use the budget's reserved
// quarter: many times a usual webhook from Meta.
const SmallBody = 64 << 10

// NewBudget makes a budget of max bytes.
func NewBudget(max int64) *Budget {
	return &Budget{max: max, largeMax: max - max/4, freed: make(chan struct{})}
}

// clamp caps a share at what its kind may ever hold, so that it can be
// granted once the budget is free (config validation keeps max_body
// within the large shares' part).
func (b *Budget) clamp(n int64) int64 {
	if n > SmallBody {
		return min(n, b.largeMax)
	}
	return max(n, 0)
}

// Acquire takes n bytes of the budget, waiting at most wait (or until ctx
// ends) for them to be free, and reports whether it got them. The wait
// is on the real clock, as the listener's read timeouts are: it bounds a
// socket, not Baton's logic. Every release wakes every waiter to look
// again: they are at most the listener's connections, each for a second.
func (b *Budget) Acquire(ctx context.Context, n int64, wait time.Duration) bool {
	n = b.clamp(n)
	var timer *time.Timer
	for {
		b.mu.Lock()
		if b.used+n <= b.max && (n <= SmallBody || b.large+n <= b.largeMax) {
			b.used += n
			if n > SmallBody {
				b.large += n
			}
			b.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return true
		}
		freed := b.freed
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-freed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			timer.Stop()
			return false
		}
	}
}

// Release gives back n bytes taken by Acquire(n) and wakes the waiters:
// each looks again whether its share is free now.
func (b *Budget) Release(n int64) {
	n = b.clamp(n)
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if n > SmallBody {
		b.large -= n
	}
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// InFlight is the bytes taken now, for the gauge.
func (b *Budget) InFlight() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
