package dispatch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/store"
)

// With adapter.batch, a worker sends several ready lanes of its bot in
// one request. Each lane contributes its head only, and stays running
// until the batch's answer is settled, so a thread is never in two
// batches at once and its next delivery goes in a later request, after
// this one's answer: per-thread order holds within and across batches,
// whatever the bot answers for each of its envelopes. Each delivery keeps
// its own attempts, backoff and dead letter; a bot's concurrency is the
// number of batches in flight.

// batcher is an adapter that carries several deliveries in one request
// (adapters/webhook and adapters/metaformat are).
type batcher interface {
	DeliverBatch(ctx context.Context, ds []*adapters.Delivery) []adapters.Outcome
}

// batchOf returns the bot's batcher when its app batches, or nil.
func batchOf(b *bot) batcher {
	if b.app.BatchMax < 1 {
		return nil
	}
	bt, _ := b.app.Adapter.(batcher)
	return bt
}

// takeLocked pops up to n ready lanes of b into ls and marks them running.
func takeLocked(b *bot, ls []*lane, n int) []*lane {
	for len(ls) < n && b.ready.len() > 0 {
		l := b.ready.pop()
		l.state = running
		ls = append(ls, l)
	}
	return ls
}

// batchItem is one lane's head in a batch.
type batchItem struct {
	l    *lane
	del  *store.Delivery
	more bool
}

// batchTurn gives the lanes a worker took one turn together: when fewer
// than the bot's batch.max are ready it waits up to batch.wait for more,
// then reads each lane's head and delivers the due ones in one request.
func (ds *Dispatcher) batchTurn(ctx context.Context, b *bot, bt batcher, ls []*lane) {
	a := b.app
	if len(ls) < a.BatchMax && a.BatchWait > 0 {
		select {
		case <-clock.At(ds.d.Clock, ds.d.Clock.Now().Add(a.BatchWait)):
		case <-ctx.Done():
		}
		ds.mu.Lock()
		ls = takeLocked(b, ls, a.BatchMax)
		ds.mu.Unlock()
	}
	if ctx.Err() != nil {
		for _, l := range ls {
			ds.requeue(l, true) // shutting down: they stay in the outbox
		}
		return
	}
	items := make([]batchItem, 0, len(ls))
	for _, l := range ls {
		if del, more := ds.due(l); del != nil {
			items = append(items, batchItem{l: l, del: del, more: more})
		}
	}
	envs := make([]*adapters.Delivery, 0, len(items))
	for _, it := range items {
		envs = append(envs, ds.envelope(it.del))
	}
	owned := items[:0]
	for i, it := range items {
		if ds.owns(it.l) {
			owned, envs[len(owned)] = append(owned, it), envs[i]
		}
	}
	items, envs = owned, envs[:len(owned)]
	if len(items) == 0 {
		return
	}
	start := time.Now()
	outs := bt.DeliverBatch(ctx, envs)
	ds.d.Metrics.DeliverSec.WithLabelValues(a.Name).Observe(time.Since(start).Seconds())
	if len(outs) != len(items) { // an adapter's bug: nothing is known delivered
		outs = adapters.FailAll(len(items), fmt.Errorf("adapter answered %d outcomes for a batch of %d", len(outs), len(items)))
	}
	if len(items) == 1 {
		ds.settle(ctx, items[0].l, items[0].del, items[0].more, outs[0].Result, outs[0].Err)
		return
	}
	// Failures each write their schedule or dead letter: settled side by
	// side, they share the store's group commits.
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds.settle(ctx, it.l, it.del, it.more, outs[i].Result, outs[i].Err)
		}()
	}
	wg.Wait()
}
