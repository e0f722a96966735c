package ingress

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// Cluster makes the ingress one replica's of several on a sharded store
// (store/postgres). Meta may reach any replica: the one it reaches
// accepts the webhook into the inbound queue, durably, before the 200,
// and the owner of each event's thread (by its shard) routes it from
// there, in the queue's order. Routing stays where it was, one actor per
// thread: the ledger, the rules and the deliveries of a thread are only
// ever its owner's.
type Cluster struct {
	// Shared is the whole store, unscoped (Deps.Store is this replica's
	// scope of it): accepting writes the queue and no thread.
	Shared store.Store
	// Accept is the store accept writes through (Shared when nil): one
	// whose commits do not wait behind the routing transactions, so that
	// a webhook's 200 waits for its own.
	Accept  store.Store
	Inbound store.Inbound
	// Scope is what this replica routes.
	Scope   store.Scope
	ShardOf func(store.ThreadKey) int
}

// routeBatch is how many queued copies one routing transaction takes.
const routeBatch = 256

// badEntryWait is how long a queued entry that this replica's config
// cannot route waits for a config that can (a rolling change of the
// replicas' files) before it is dropped and shown in recent errors.
const badEntryWait = 10 * time.Minute

// inboundPoll is how often the router reads the queue without being told
// of new entries: the notifications are a fast path, and one lost while
// the listening connection was down is caught up here.
const inboundPoll = time.Second

// accept queues each usable event of one webhook for its thread's owner,
// in one durable write shared with concurrent requests.
func (in *Ingress) accept(ctx context.Context, name string, rcv *topology.App, env *messenger.Envelope) error {
	c := in.d.Cluster
	now := in.d.Clock.Now()
	st := c.Accept
	if st == nil {
		st = c.Shared
	}
	return st.Update(ctx, func(tx store.Tx) error {
		itx, ok := tx.(store.InboundTx)
		if !ok {
			return errors.New("the store keeps no inbound queue: cluster needs store.postgres")
		}
		out, own := &routed{}, false
		err := in.usable(rcv, env, out, func(p *topology.Page, ch messenger.Channel, ev *messenger.Event) error {
			k := store.ThreadKey{Page: p.ID, PSID: string(ev.UserID())}
			e := store.InboundEntry{Shard: c.ShardOf(k), App: rcv.Name, Page: p.ID, PSID: k.PSID, Channel: string(ch), ReceivedAt: now, Event: ev.Raw}
			if err := itx.AppendInbound(&e); err != nil {
				return fmt.Errorf("queue for the owner of shard %d: %w", e.Shard, err)
			}
			own = own || c.Scope.Owns(e.Shard)
			return nil
		})
		if err != nil {
			return err
		}
		tx.AfterCommit(func() {
			in.committed(name, out)
			if own { // this replica routes some of them: no need to wait for the notification
				in.routerBell.Ring()
			}
		})
		return nil
	})
}

// RunRouter routes the inbound queue of the shards this replica owns, in
// the queue's order, until ctx ends. Without Cluster there is no queue.
func (in *Ingress) RunRouter(ctx context.Context) error {
	c := in.d.Cluster
	if c == nil || len(c.Scope.Shards()) == 0 {
		return nil
	}
	log := in.d.Log.Named("router")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); in.listen(ctx, log) }()
	defer wg.Wait()
	failures := 0
	for {
		n, err := in.routeInbound(ctx, log)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			wait = clock.Doubling(failures, 50*time.Millisecond, 5*time.Second)
			if failures == 1 || failures%20 == 0 {
				log.Warn("routing the inbound queue failed; retrying", zap.Int("failures", failures), zap.Duration("retry_in", wait), zap.Error(err))
			}
		case n == routeBatch:
			failures = 0
			continue // more are waiting
		default:
			failures = 0
			wait = inboundPoll
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-in.routerBell.C():
		case <-t.C:
		}
		t.Stop()
	}
}

// listen rings the router whenever a replica queued entries, listening
// again (with backoff) when the connection breaks.
func (in *Ingress) listen(ctx context.Context, log *zap.Logger) {
	for failures := 0; ; failures++ {
		err := in.d.Cluster.Inbound.ListenInbound(ctx, in.routerBell.Ring)
		if ctx.Err() != nil {
			return
		}
		in.routerBell.Ring() // what came while it was down was not told
		wait := clock.Doubling(failures+1, 100*time.Millisecond, 5*time.Second)
		log.Warn("listening for queued webhooks failed; the router polls meanwhile", zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// queued is one entry of the inbound queue, decoded for routing.
type queued struct {
	e   store.InboundEntry
	rcv *topology.App
	p   *topology.Page
	ch  messenger.Channel
	ev  *messenger.Event
	bad string // why it cannot be routed (the config changed since it was accepted)
}

// routeInbound routes one batch of the queue: in one transaction when it
// can, else each entry alone, a failing one holding back only the later
// entries of its thread. It reports how many entries it read.
func (in *Ingress) routeInbound(ctx context.Context, log *zap.Logger) (int, error) {
	c := in.d.Cluster
	var shards []int
	for _, s := range c.Scope.Shards() {
		if c.Scope.Owns(s) {
			shards = append(shards, s)
		}
	}
	if len(shards) == 0 {
		return 0, nil
	}
	entries, err := c.Inbound.PendingInbound(ctx, shards, routeBatch)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	// An entry this replica's config cannot route (its app or page is not
	// in it) may be one a replica with a newer config accepted during a
	// rolling change: it waits, holding back its thread, until
	// badEntryWait has passed, and only then is dropped as unusable.
	now := in.d.Clock.Now()
	qs := make([]queued, 0, len(entries))
	waiting := map[store.ThreadKey]bool{}
	for _, e := range entries {
		k := store.ThreadKey{Page: e.Page, PSID: e.PSID}
		if waiting[k] {
			continue
		}
		q := in.decode(e)
		if q.bad != "" && now.Sub(e.ReceivedAt) < badEntryWait {
			waiting[k] = true
			continue
		}
		qs = append(qs, q)
	}
	if len(qs) == 0 {
		return 0, nil // all wait: read again at the next poll, not in a loop
	}
	if err := in.routeQueued(ctx, qs); err == nil || errors.Is(err, store.ErrFenced) || ctx.Err() != nil {
		return len(entries), err
	}
	held := map[store.ThreadKey]bool{}
	var last error
	for _, q := range qs {
		k := store.ThreadKey{Page: q.e.Page, PSID: q.e.PSID}
		if held[k] {
			continue
		}
		if err := in.routeQueued(ctx, []queued{q}); err != nil {
			held[k], last = true, err
			log.Warn("a queued webhook event could not be routed; its thread waits", zap.Uint64("seq", q.e.Seq), zap.String("page", k.Page), zap.String("psid", k.PSID), zap.Error(err))
		}
	}
	return len(entries), last
}

// decode makes an entry routable again: the event parsed as Meta's
// webhook would carry it, its app and page found in the running config.
func (in *Ingress) decode(e store.InboundEntry) queued {
	q := queued{e: e, ch: messenger.Channel(e.Channel)}
	q.rcv, q.p = in.d.Topology.App(e.App), in.d.Topology.Page(e.Page)
	switch {
	case q.rcv == nil || !q.rcv.Hosted:
		q.bad = "its app " + quoteShort(e.App) + " is no longer hosted here"
		return q
	case q.p == nil || !q.p.HasApp(q.rcv.ID):
		q.bad = "its page is no longer configured with the app"
		return q
	case q.ch != messenger.ChannelMessaging && q.ch != messenger.ChannelStandby:
		q.bad = "unknown channel " + quoteShort(e.Channel)
		return q
	}
	object := messenger.ObjectPage
	if q.p.Instagram {
		object = messenger.ObjectInstagram
	}
	body := fmt.Appendf(nil, `{"object":%q,"entry":[{"id":%q,"time":0,%q:[`, object, e.Page, e.Channel)
	body = append(append(body, e.Event...), "]}]}"...)
	env, err := messenger.ParseWebhook(body)
	if err != nil || len(env.Entry) != 1 {
		q.bad = fmt.Sprintf("its event no longer parses: %v", err)
		return q
	}
	env.Each(func(_ *messenger.Entry, _ messenger.Channel, ev *messenger.Event) { q.ev = ev })
	if q.ev == nil {
		q.bad = "its event is empty"
	}
	return q
}

// threadPrefetcher is a transaction that reads many threads in one go
// (store/postgres): routing a batch reads its events' threads first,
// rather than a round trip to the database each.
type threadPrefetcher interface {
	PrefetchThreads(keys []store.ThreadKey) error
}

// routeQueued routes qs in one transaction of this replica's scope and
// takes them off the queue with it.
func (in *Ingress) routeQueued(ctx context.Context, qs []queued) error {
	now := in.d.Clock.Now()
	return in.d.Store.Update(ctx, func(tx store.Tx) error {
		itx, ok := tx.(store.InboundTx)
		if !ok {
			return errors.New("the store keeps no inbound queue")
		}
		if p, ok := tx.(threadPrefetcher); ok {
			keys := make([]store.ThreadKey, 0, len(qs))
			for _, q := range qs {
				if q.bad == "" && q.e.PSID != "" {
					keys = append(keys, store.ThreadKey{Page: q.e.Page, PSID: q.e.PSID})
				}
			}
			if err := p.PrefetchThreads(keys); err != nil {
				return err
			}
		}
		outs := map[string]*routed{}
		for _, q := range qs {
			out := outs[q.e.App]
			if out == nil {
				out = &routed{}
				outs[q.e.App] = out
			}
			if q.bad != "" {
				out.unusable = append(out.unusable, recent.Error{Kind: "webhook", App: q.e.App, Page: q.e.Page, Message: "queued event not routed: " + q.bad})
			} else if err := in.route(tx, q.rcv, q.p, q.ch, q.ev, now, out); err != nil {
				return err
			}
			if err := itx.DeleteInbound(q.e); err != nil {
				return fmt.Errorf("take entry %d off the queue: %w", q.e.Seq, err)
			}
		}
		tx.AfterCommit(func() {
			for app, out := range outs {
				in.committed(app, out)
			}
		})
		return nil
	})
}
