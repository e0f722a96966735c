package ingress

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/store"
)

// pruneBatch bounds one transaction of journal pruning: webhooks wait for
// the write lock meanwhile.
const pruneBatch = 2000

// RunSweeper deletes expired dedup marks and the journal's entries past
// their retention every hour, until ctx ends.
func (in *Ingress) RunSweeper(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-in.d.Clock.After(time.Hour):
		}
		err := in.sweepStore().Update(ctx, func(tx store.Tx) error {
			_, err := tx.SweepSeen(in.d.Clock.Now(), DedupWindow)
			return err
		})
		if err != nil {
			in.d.Log.Error("dedup marks not swept", zap.Error(err))
		}
		in.pruneJournal(ctx)
		in.pruneTranscript(ctx)
	}
}

// pruneTranscript deletes the transcript's entries recorded before the
// journal's retention: a conversation is kept as long as the events it was
// read from.
func (in *Ingress) pruneTranscript(ctx context.Context) int {
	return in.prune(ctx, "transcript", "recorded_before", func(n int) {}, store.Tx.PruneTranscript)
}

// pruneJournal deletes the journal's entries older than its retention.
func (in *Ingress) pruneJournal(ctx context.Context) int {
	return in.prune(ctx, "journal", "received_before", func(n int) { in.d.Metrics.Pruned.Add(float64(n)) }, store.Tx.PruneJournal)
}

// prune deletes what del removes from before the retention, a batch per
// transaction so that webhooks' commits go on between them, and reports
// how many went.
func (in *Ingress) prune(ctx context.Context, what, field string, counted func(int), del func(store.Tx, time.Time, int) (int, error)) int {
	before := in.d.Clock.Now().Add(-in.d.Webhooks.JournalRetention)
	total := 0
	for ctx.Err() == nil {
		var n int
		err := in.sweepStore().Update(ctx, func(tx store.Tx) error {
			var err error
			n, err = del(tx, before, pruneBatch)
			return err
		})
		if err != nil {
			in.d.Log.Error(what+" not pruned", zap.Error(err))
			break
		}
		total += n
		counted(n)
		if n < pruneBatch {
			break
		}
	}
	if total > 0 {
		in.d.Log.Info(what+" pruned", zap.Int("entries", total), zap.Time(field, before))
	}
	return total
}

// sweepStore is where the sweeper writes: the whole store, which a
// replica's scope is not (its sweeps cross every shard).
func (in *Ingress) sweepStore() store.Store {
	if in.d.Cluster != nil {
		return in.d.Cluster.Shared
	}
	return in.d.Store
}
