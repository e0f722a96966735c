package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/store"
)

// Handoff ends the membership for a graceful stop (SIGTERM): it stops Run
// (waiting for an apply in flight), releases every lease held and ends
// the heartbeat, so that the other replicas take the shards at their
// next tick rather than after the TTL. Call it once the replica stopped
// acting for its scope; Run may not start again after it. A lease it
// cannot release runs out at its TTL.
func (m *Member) Handoff(ctx context.Context) error {
	m.mu.Lock()
	m.leaving = true
	started, stop := m.started, m.stop
	m.mu.Unlock()
	if started {
		stop()
		select {
		case <-m.done:
		case <-ctx.Done():
			return fmt.Errorf("cluster: hand-off: waiting for the membership to stop: %w", ctx.Err())
		}
	}

	m.mu.Lock()
	cells := make([]*cell, 0, len(m.held))
	for _, c := range m.held {
		cells = append(cells, c)
	}
	m.held, m.applied = map[int]*cell{}, Scope{}
	m.mu.Unlock()

	now := time.Now()
	var errs []error
	var released []int
	for _, c := range cells {
		l, _ := c.live(now)
		c.kill(now)
		// One past its local deadline may still be the database's:
		// released too, it need not run out.
		err := m.db.Release(ctx, l)
		switch {
		case err == nil:
			released = append(released, l.Shard)
		case !errors.Is(err, store.ErrFenced):
			errs = append(errs, err)
		}
	}
	sort.Ints(released)
	m.met.addMoves(0, len(released))
	m.met.setOwned(0)
	if err := m.db.Leave(ctx, m.id); err != nil {
		errs = append(errs, fmt.Errorf("cluster: leave: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		m.log.Error("hand-off incomplete: what was not released runs out at its TTL", zap.String("released", Ranges(released)), zap.Error(err))
		return err
	}
	m.log.Info("handed off every shard and left", zap.String("shards", Ranges(released)), zap.Int("count", len(released)))
	return nil
}
