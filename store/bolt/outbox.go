package bolt

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt/layout"
)

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
	seq, err := x.b(layout.Outbox).NextSequence()
	if err != nil {
		return err
	}
	d.ID = seq
	d.Status = store.DeliveryPending
	x.b(layout.Outbox).FillPercent = appendOnly
	if err := putDeliveryRecord(x.b(layout.Outbox), layout.U64(seq), d.WithoutSharedEvent()); err != nil {
		return err
	}
	if err := x.putLane(d); err != nil {
		return err
	}
	return x.countPending(d.App, 1)
}

func (o outboxOps) Delivery(id uint64) (store.Delivery, error) {
	x := o.x
	d, err := get[store.Delivery](x.b(layout.Outbox), layout.U64(id))
	if err == store.ErrNotFound {
		d, err = get[store.Delivery](x.b(layout.Dead), layout.U64(id))
	}
	if err != nil {
		return d, err
	}
	return x.withEvent(d)
}

func (o outboxOps) UpdateDelivery(d store.Delivery) error {
	x := o.x
	if x.b(layout.Outbox).Get(layout.U64(d.ID)) == nil {
		return fmt.Errorf("delivery %d: %w", d.ID, store.ErrNotFound)
	}
	if err := putDeliveryRecord(x.b(layout.Outbox), layout.U64(d.ID), d.WithoutSharedEvent()); err != nil {
		return err
	}
	return x.putLane(&d)
}

func (o outboxOps) DeleteDelivery(id uint64) error {
	x := o.x
	v := x.b(layout.Outbox).Get(layout.U64(id))
	if v == nil {
		return nil // a done mark written twice
	}
	lane, err := layout.LaneOf(id, v)
	if err != nil {
		return err
	}
	key := layout.LaneIDKey(lane)
	if err := x.unqueue(lane, key); err != nil {
		return err
	}
	return x.markLaterDelivered(key[:len(key)-8], id) // the lane's prefix
}

// unqueue takes a pending delivery out of the outbox and its indexes
// (laneKey: its key in the lane index).
func (o outboxOps) unqueue(d *store.Delivery, laneKey []byte) error {
	x := o.x
	if err := x.b(layout.Outbox).Delete(layout.U64(d.ID)); err != nil {
		return err
	}
	if err := x.b(layout.Lanes).Delete(laneKey); err != nil {
		return err
	}
	return x.countPending(d.App, -1)
}

func (o outboxOps) KillDelivery(d store.Delivery) error {
	x := o.x
	if x.b(layout.Outbox).Get(layout.U64(d.ID)) == nil {
		// Erased while it was attempted: its event must not come back as
		// a dead letter's copy.
		return fmt.Errorf("delivery %d: %w", d.ID, store.ErrNotFound)
	}
	if err := x.unqueue(&d, layout.LaneIDKey(&d)); err != nil {
		return err
	}
	d, err := x.withEvent(d)
	if err != nil {
		return err
	}
	d.Status, d.SharesEvent = store.DeliveryDead, false
	if err := put(x.b(layout.Dead), layout.U64(d.ID), d); err != nil {
		return err
	}
	if d.LaterDelivered {
		return nil // already passed: nothing left to mark
	}
	return x.b(layout.DeadLanes).Put(layout.LaneIDKey(&d), nil)
}

func (o outboxOps) ReviveDelivery(id uint64, now time.Time) (store.Delivery, error) {
	x := o.x
	d, err := get[store.Delivery](x.b(layout.Dead), layout.U64(id))
	if err != nil {
		return d, fmt.Errorf("dead delivery %d: %w", id, err)
	}
	d.ID = id
	if err := x.b(layout.Dead).Delete(layout.U64(id)); err != nil {
		return d, err
	}
	if err := x.b(layout.DeadLanes).Delete(layout.LaneIDKey(&d)); err != nil {
		return d, err
	}
	d.RetriedDeadAt = d.DeadAt
	d.Status, d.Attempts, d.NextAttempt, d.DeadAt = store.DeliveryPending, 0, now, time.Time{}
	if err := putDeliveryRecord(x.b(layout.Outbox), layout.U64(id), d); err != nil {
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

func (o outboxOps) PendingDeliveries(after uint64, limit int) ([]store.Delivery, error) {
	return o.deliveries(layout.Outbox, after, limit)
}

func (o outboxOps) DeadDeliveries(after uint64, limit int) ([]store.Delivery, error) {
	return o.deliveries(layout.Dead, after, limit)
}

// deliveries reads bucket's deliveries with ids after after, in id order:
// a seek to the first, then at most limit values, so that a page of a
// million-delivery outbox costs a page.
func (o outboxOps) deliveries(bucket []byte, after uint64, limit int) ([]store.Delivery, error) {
	x := o.x
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []store.Delivery
	c := x.b(bucket).Cursor()
	for k, v := c.Seek(layout.U64(after + 1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
		var d store.Delivery
		if err := unmarshal(v, &d); err != nil {
			return nil, fmt.Errorf("delivery %d: %w", binary.BigEndian.Uint64(k), err)
		}
		d, err := x.withEvent(d)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// outboxOps holds the transaction's methods on the outbox and the dead letters; tx embeds it.
type outboxOps struct{ x *tx }
