package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt/layout"
)

// The outbox is keyed by id, in enqueue order; the dispatcher reads it by
// lane (one bot, one thread) through two indexes:
//
//	lanes      app \0 page \0 psid \0 id -> next attempt, created (ns), attempts
//	deadlanes  app \0 page \0 psid \0 id -> empty
//
// lanes holds every pending delivery, so that a lane's head is one seek
// and the next lane another, and carries what scheduling needs, so that
// listing lanes never reads a delivery; deadlanes holds the dead letters
// that no later delivery of their lane has passed yet (see
// DeleteDelivery). Pending counts per app live in meta ("pending:<app>").

// putLane indexes a pending delivery (again, when its schedule changed).
func (o laneOps) putLane(d *store.Delivery) error {
	x := o.x
	return x.b(layout.Lanes).Put(layout.LaneIDKey(d), layout.LaneValue(d))
}

// countPending moves app's pending count by delta; flush writes it. A
// commit of a hundred deliveries then writes the count once, not a
// hundred times.
func (o laneOps) countPending(app string, delta int64) error {
	x := o.x
	if x.pending == nil {
		x.pending = map[string]int64{}
	}
	x.pending[app] += delta
	return nil
}

// flush writes what the transaction kept to write once, before it
// commits: the pending counts.
func (o laneOps) flush() error {
	x := o.x
	meta := x.b(layout.Meta)
	for app, delta := range x.pending {
		if delta == 0 {
			continue
		}
		key := []byte(pendingPrefix + app)
		var n int64
		if v := meta.Get(key); v != nil {
			n = int64(binary.BigEndian.Uint64(v))
		}
		var err error
		if n += delta; n <= 0 {
			err = meta.Delete(key)
		} else {
			err = meta.Put(key, layout.U64(uint64(n)))
		}
		if err != nil {
			return err
		}
	}
	clear(x.pending)
	return nil
}

const pendingPrefix = "pending:"

func (o laneOps) CountPending() (map[string]int, error) {
	x := o.x
	out := map[string]int{}
	c := x.b(layout.Meta).Cursor()
	prefix := []byte(pendingPrefix)
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		out[string(k[len(prefix):])] = int(binary.BigEndian.Uint64(v))
	}
	for app, delta := range x.pending { // this transaction's own, not yet written
		if n := out[app] + int(delta); n > 0 {
			out[app] = n
		} else {
			delete(out, app)
		}
	}
	return out, nil
}

func (o laneOps) Lanes(app string, after store.ThreadKey, limit int) ([]store.LaneHead, error) {
	x := o.x
	prefix := append([]byte(app), 0)
	c := x.b(layout.Lanes).Cursor()
	var k, v []byte
	if after == (store.ThreadKey{}) {
		k, v = c.Seek(prefix)
	} else {
		k, v = c.Seek(layout.PastLane(layout.LaneKey(app, after)))
	}
	var out []store.LaneHead
	for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Seek(layout.PastLane(k[:len(k)-8])) {
		if len(k) < len(prefix)+10 {
			return nil, fmt.Errorf("lane index key %q is damaged", k)
		}
		h, err := layout.LaneHead(layout.SplitThreadKey(k[len(prefix):len(k)-9]), k, v) // page \0 psid
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func (o laneOps) LanePending(app string, k store.ThreadKey, limit int) ([]store.LaneHead, error) {
	x := o.x
	prefix := layout.LaneKey(app, k)
	c := x.b(layout.Lanes).Cursor()
	var out []store.LaneHead
	for key, v := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix) && len(out) < limit; key, v = c.Next() {
		h, err := layout.LaneHead(k, key, v)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// markLaterDelivered sets LaterDelivered on the deliveries of the lane of
// prefix older than id, a delivered one: pending ones that were revived
// from the dead, and dead letters (which then leave deadlanes: they are
// marked for good).
func (o laneOps) markLaterDelivered(prefix []byte, id uint64) error {
	x := o.x
	// PSIDs hold no NUL: every key under the prefix is of this lane.
	older := func(k []byte) bool {
		return bytes.HasPrefix(k, prefix) && binary.BigEndian.Uint64(k[len(prefix):]) < id
	}
	c := x.b(layout.Lanes).Cursor()
	for k, _ := c.Seek(prefix); k != nil && older(k); k, _ = c.Next() {
		key := layout.U64(binary.BigEndian.Uint64(k[len(prefix):]))
		d, err := get[store.Delivery](x.b(layout.Outbox), key)
		if err != nil {
			return fmt.Errorf("delivery %d: %w", binary.BigEndian.Uint64(key), err)
		}
		if d.RetriedDeadAt.IsZero() || d.LaterDelivered {
			continue
		}
		d.LaterDelivered = true
		// Only values change under the cursor: bbolt allows that.
		if err := putDeliveryRecord(x.b(layout.Outbox), key, d.WithoutSharedEvent()); err != nil {
			return err
		}
	}
	var marked [][]byte
	dc := x.b(layout.DeadLanes).Cursor()
	for k, _ := dc.Seek(prefix); k != nil && older(k); k, _ = dc.Next() {
		marked = append(marked, append([]byte(nil), k...))
	}
	for _, k := range marked {
		key := k[len(prefix):]
		d, err := get[store.Delivery](x.b(layout.Dead), key)
		if err == nil {
			d.LaterDelivered = true
			err = put(x.b(layout.Dead), key, d)
		}
		if err != nil && err != store.ErrNotFound {
			return fmt.Errorf("dead delivery %d: %w", binary.BigEndian.Uint64(key), err)
		}
		if err := x.b(layout.DeadLanes).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// buildLaneIndexes fills the lane indexes and pending counts of a file
// written before they existed: once, when Open creates their buckets.
func buildLaneIndexes(btx *bolt.Tx) error {
	x := newTx(btx)
	err := x.b(layout.Outbox).ForEach(func(k, v []byte) error {
		var d store.Delivery
		if err := unmarshal(v, &d); err != nil {
			return fmt.Errorf("delivery %d: %w", binary.BigEndian.Uint64(k), err)
		}
		d.ID = binary.BigEndian.Uint64(k)
		if err := x.putLane(&d); err != nil {
			return err
		}
		return x.countPending(d.App, 1)
	})
	if err != nil {
		return err
	}
	err = x.b(layout.Dead).ForEach(func(k, v []byte) error {
		var d store.Delivery
		if err := unmarshal(v, &d); err != nil {
			return fmt.Errorf("dead delivery %d: %w", binary.BigEndian.Uint64(k), err)
		}
		d.ID = binary.BigEndian.Uint64(k)
		if d.LaterDelivered {
			return nil
		}
		return x.b(layout.DeadLanes).Put(layout.LaneIDKey(&d), nil)
	})
	if err != nil {
		return err
	}
	return x.flush()
}

// laneOps holds the transaction's methods on the lane index: the schedule of pending deliveries by bot and thread; tx embeds it.
type laneOps struct{ x *tx }
