package deletion

import (
	"context"
	"encoding/json"
	"fmt"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// The erasure notice: once a person is erased, every hosted app on the
// page that takes Baton's envelope gets one delivery of kind
// adapters.KindErasure, so that it deletes its own copy (the inbox keeps
// messages, notes and the person's name). It goes through the outbox like
// any event (retries, dead letters), but it is the page's, not the
// person's: its delivery has no PSID (the event names the person), so it
// is on no thread, in no journal or transcript, and an erase of the same
// person, which removes the person's deliveries, never finds it. A second
// erase sends another notice, which an app handles as it did the first.
//
// Apps with adapter type messenger get nothing: they receive Meta's
// webhook format, which has no event for an erasure (Meta tells an app of
// a deletion only through the app's own data deletion callback).

// notify enqueues the erasure notice of the person of thread k for each
// hosted app on the page that takes it, and hands them to Deliver once
// they are durable.
func (s *Service) notify(ctx context.Context, k store.ThreadKey) error {
	p := s.d.Topology.Page(k.Page)
	if p == nil {
		return nil // the page left the config: no app on it to tell
	}
	var apps []string
	for _, a := range p.Apps {
		if a.Hosted && a.AdapterType == webhook.TypeName {
			apps = append(apps, a.Name)
		}
	}
	if len(apps) == 0 {
		return nil
	}
	now := s.d.Clock.Now()
	ev, err := json.Marshal(adapters.Erasure{Type: adapters.KindErasure, PageID: k.Page, PSID: k.PSID, ErasedAt: now.UTC()})
	if err != nil {
		return fmt.Errorf("erasure notice for %s: %w", k.Page, err)
	}
	err = s.d.Store.Update(ctx, func(tx store.Tx) error {
		dels := make([]store.Delivery, 0, len(apps))
		for _, app := range apps {
			d := store.Delivery{App: app, Page: k.Page, Kind: adapters.KindErasure, Event: ev,
				State: string(statemachine.Idle), CreatedAt: now, NextAttempt: now}
			if err := tx.Enqueue(&d); err != nil {
				return fmt.Errorf("enqueue for %s: %w", app, err)
			}
			dels = append(dels, d)
		}
		if s.d.Deliver != nil {
			tx.AfterCommit(func() { s.d.Deliver(dels) })
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("erasure notice for page %s: %w", k.Page, err)
	}
	s.d.Log.Info("erasure notice queued", zap.String("page", k.Page), zap.Strings("apps", apps))
	return nil
}
