package dispatch

import (
	"context"
	"slices"

	"go.uber.org/zap"

	"github.com/batonhq/baton/store"
)

// doneMark is a delivered delivery whose outbox entry is still to delete.
type doneMark struct {
	l  *lane
	id uint64
}

// finish marks a delivery done. The lane does not wait for the write: it
// skips the delivery until the mark is durable, marks are batched into
// one write per commit by flushDone, and a crash before it lands only
// means the bot sees the delivery again, under the same id.
func (ds *Dispatcher) finish(l *lane, id uint64) {
	ds.mu.Lock()
	l.skip = append(l.skip, id)
	l.held = nil
	ds.done = append(ds.done, doneMark{l: l, id: id})
	first := len(ds.done) == 1
	ds.mu.Unlock()
	if first {
		kick(ds.doneKick)
	}
}

// flushDone writes the done marks, one batch per store commit, until ctx
// ends; then it writes what is left.
func (ds *Dispatcher) flushDone(ctx context.Context) {
	for {
		select {
		case <-ds.doneKick:
		case <-ctx.Done():
			ds.writeDone()
			return
		}
		ds.writeDone()
	}
}

func (ds *Dispatcher) writeDone() {
	ds.mu.Lock()
	marks := ds.done
	ds.done = nil
	ds.mu.Unlock()
	if len(marks) == 0 {
		return
	}
	err := ds.d.Store.Update(context.Background(), func(tx store.Tx) error {
		for _, m := range marks {
			if err := tx.DeleteDelivery(m.id); err != nil {
				return err
			}
		}
		tx.AfterCommit(func() { ds.marked(marks, true) })
		return nil
	})
	if err != nil {
		ds.d.Log.Error("delivered but not marked done; they will be delivered again", zap.Int("deliveries", len(marks)), zap.Error(err))
		ds.marked(marks, false)
	}
}

// marked settles the lanes of done marks: written, the deliveries are gone
// from the store and the lanes need not skip them; not written, they stay
// skipped for the rest of this run (the next one delivers them again).
func (ds *Dispatcher) marked(marks []doneMark, written bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, m := range marks {
		l := m.l
		if i := slices.Index(l.skip, m.id); i >= 0 {
			l.skip = slices.Delete(l.skip, i, i+1)
		}
		if !written {
			l.stuck = append(l.stuck, m.id)
		}
		if l.state == drained && l.idle() {
			ds.drainLocked(l)
		}
	}
}
