package bolt

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/store"
)

// stored is how a delivery is written: without the event when the journal
// has the same bytes.
func stored(d store.Delivery) store.Delivery {
	if d.SharesEvent && d.JournalSeq != 0 {
		d.Event = nil
	}
	return d
}

// withEvent fills the event back in from the journal.
func (o outboxOps) withEvent(d store.Delivery) (store.Delivery, error) {
	x := o.x
	if d.Event != nil || !d.SharesEvent {
		return d, nil
	}
	ev, err := x.journalEvent(d.JournalSeq)
	d.Event = ev
	return d, err
}

func (o outboxOps) Enqueue(d *store.Delivery) error {
	x := o.x
	// The outbox's own sequence: ids stay unique as deliveries move to the
	// dead letters and back.
	seq, err := x.b(bOutbox).NextSequence()
	if err != nil {
		return err
	}
	d.ID = seq
	d.Status = store.DeliveryPending
	x.b(bOutbox).FillPercent = appendOnly
	if err := put(x.b(bOutbox), u64(seq), stored(*d)); err != nil {
		return err
	}
	if err := x.putLane(d); err != nil {
		return err
	}
	return x.countPending(d.App, 1)
}

func (o outboxOps) Delivery(id uint64) (store.Delivery, error) {
	x := o.x
	d, err := get[store.Delivery](x.b(bOutbox), u64(id))
	if err == store.ErrNotFound {
		d, err = get[store.Delivery](x.b(bDead), u64(id))
	}
	if err != nil {
		return d, err
	}
	return x.withEvent(d)
}

func (o outboxOps) UpdateDelivery(d store.Delivery) error {
	x := o.x
	if x.b(bOutbox).Get(u64(d.ID)) == nil {
		return fmt.Errorf("delivery %d: %w", d.ID, store.ErrNotFound)
	}
	if err := put(x.b(bOutbox), u64(d.ID), stored(d)); err != nil {
		return err
	}
	return x.putLane(&d)
}

func (o outboxOps) DeleteDelivery(id uint64) error {
	x := o.x
	v := x.b(bOutbox).Get(u64(id))
	if v == nil {
		return nil // a done mark written twice
	}
	lane, err := laneOf(id, v)
	if err != nil {
		return err
	}
	if err := x.unqueue(lane); err != nil {
		return err
	}
	return x.markLaterDelivered(laneKey(lane.App, store.ThreadKey{Page: lane.Page, PSID: lane.PSID}), id)
}

// unqueue takes a pending delivery out of the outbox and its indexes.
func (o outboxOps) unqueue(d *store.Delivery) error {
	x := o.x
	if err := x.b(bOutbox).Delete(u64(d.ID)); err != nil {
		return err
	}
	if err := x.b(bLanes).Delete(laneIDKey(d)); err != nil {
		return err
	}
	return x.countPending(d.App, -1)
}

func (o outboxOps) KillDelivery(d store.Delivery) error {
	x := o.x
	if x.b(bOutbox).Get(u64(d.ID)) == nil {
		// Erased while it was attempted: its event must not come back as
		// a dead letter's copy.
		return fmt.Errorf("delivery %d: %w", d.ID, store.ErrNotFound)
	}
	if err := x.unqueue(&d); err != nil {
		return err
	}
	d, err := x.withEvent(d)
	if err != nil {
		return err
	}
	d.Status, d.SharesEvent = store.DeliveryDead, false
	if err := put(x.b(bDead), u64(d.ID), d); err != nil {
		return err
	}
	if d.LaterDelivered {
		return nil // already passed: nothing left to mark
	}
	return x.b(bDeadLanes).Put(laneIDKey(&d), nil)
}

func (o outboxOps) ReviveDelivery(id uint64, now time.Time) (store.Delivery, error) {
	x := o.x
	d, err := get[store.Delivery](x.b(bDead), u64(id))
	if err != nil {
		return d, fmt.Errorf("dead delivery %d: %w", id, err)
	}
	d.ID = id
	if err := x.b(bDead).Delete(u64(id)); err != nil {
		return d, err
	}
	if err := x.b(bDeadLanes).Delete(laneIDKey(&d)); err != nil {
		return d, err
	}
	d.RetriedDeadAt = d.DeadAt
	d.Status, d.Attempts, d.NextAttempt, d.DeadAt = store.DeliveryPending, 0, now, time.Time{}
	if err := put(x.b(bOutbox), u64(id), d); err != nil {
		return d, err
	}
	if err := x.putLane(&d); err != nil {
		return d, err
	}
	if err := x.countPending(d.App, 1); err != nil {
		return d, err
	}
	return x.withEvent(d)
}

func (o outboxOps) PendingDeliveries() ([]store.Delivery, error) {
	x := o.x
	return x.deliveries(bOutbox, 0)
}

func (o outboxOps) DeadDeliveries(limit int) ([]store.Delivery, error) {
	x := o.x
	return x.deliveries(bDead, limit)
}

func (o outboxOps) deliveries(bucket []byte, limit int) ([]store.Delivery, error) {
	x := o.x
	ds, err := list[store.Delivery](x.b(bucket), limit)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		if ds[i], err = x.withEvent(ds[i]); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// outboxOps holds the transaction's methods on the outbox and the dead letters; tx embeds it.
type outboxOps struct{ x *tx }
