package dispatch_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/dispatch"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// doneStore counts the done marks that reached the disk, and says when
// as many as asked for did.
type doneStore struct {
	store.Store
	done    atomic.Int64
	target  atomic.Int64
	reached chan struct{}
}

type countingTx struct {
	store.Tx
	n *int64
}

func (t countingTx) DeleteDelivery(id uint64) error {
	*t.n++
	return t.Tx.DeleteDelivery(id)
}

func (s *doneStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	var n int64
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		n = 0 // a write group may run it again
		return fn(countingTx{tx, &n})
	})
	if err == nil && n > 0 && s.done.Add(n) == s.target.Load() {
		s.reached <- struct{}{}
	}
	return err
}

// BenchmarkDispatch: what a delivery costs the dispatcher, from its
// handing over (as ingress does after the commit) to its done mark on
// disk: the lane, the head read, the envelope, an adapter that answers at
// once, the metrics, the marks' write. 64 deliveries at a time on 64
// threads, as 64 connections make them; one by one and in batches.
// ns/op is per delivery; enqueueing them (ingress's work) is not timed.
func BenchmarkDispatch(b *testing.B) {
	for _, c := range []struct{ name, batch string }{{"single", ""}, {"batch", ", batch: {max: 100}"}} {
		b.Run(c.name, func(b *testing.B) { benchDispatch(b, c.batch) })
	}
}

// nopBot answers every delivery 200 at once.
type nopBot struct{}

func (nopBot) Deliver(context.Context, *adapters.Delivery) (adapters.Result, error) {
	return adapters.Result{Status: 200}, nil
}

func (nopBot) DeliverBatch(_ context.Context, ds []*adapters.Delivery) []adapters.Outcome {
	out := make([]adapters.Outcome, len(ds))
	for i := range out {
		out[i].Result.Status = 200
	}
	return out
}

func benchDispatch(b *testing.B, batch string) {
	y := `
admin: {token_env: ADMIN_TOKEN}
delivery: {concurrency: 64}
apps:
  - name: support-bot
    app_id: "512345678901234"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    adapter: {type: http, url: "http://127.0.0.1:1/support", secret_env: SUPPORT_HOOK` + batch + `}
pages:
  - {id: "100200300400500", primary: support-bot, tokens: {support-bot: {token_env: PAGE_TOKEN_SUPPORT}}}
`
	cfg, err := config.Parse("bench.yaml", []byte(y), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		b.Fatal(err)
	}
	top, err := topology.New(cfg, map[string]adapters.Adapter{support: nopBot{}})
	if err != nil {
		b.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(b.TempDir(), "baton.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st := &doneStore{Store: db, reached: make(chan struct{}, 1)}
	m, log := metrics.New(), zap.NewNop()
	ds := dispatch.New(dispatch.Deps{Store: st, Topology: top, Clock: clock.System{}, Log: log, Metrics: m,
		Errors: recent.New(10, clock.System{}, log, m.Errors), Backoff: time.Second, MaxBackoff: time.Minute})
	if err := ds.Load(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- ds.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			b.Error(err)
		}
	}()
	event := []byte(`{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1795557600000,"message":{"mid":"m_1","text":"` + strings.Repeat("x", 900) + `"}}`)
	enqueue := func(from, n int) []store.Delivery {
		dels := make([]store.Delivery, 0, n)
		now := time.Now()
		if err := db.Update(context.Background(), func(tx store.Tx) error {
			dels = dels[:0]
			for i := from; i < from+n; i++ {
				j := &store.JournalEntry{ReceivedAt: now, App: support, Page: pageID, Channel: "messaging", Event: event}
				if err := tx.AppendJournal(j); err != nil {
					return err
				}
				d := store.Delivery{App: support, Page: pageID, PSID: strconv.Itoa(7_000_000_000_000_000 + i%1000), Channel: "messaging",
					Kind: "message", Event: event, State: "primary", Owner: supportID, CreatedAt: now, NextAttempt: now,
					JournalSeq: j.Seq, SharesEvent: true}
				if err := tx.Enqueue(&d); err != nil {
					return err
				}
				dels = append(dels, d)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		return dels
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		dels := enqueue(done, min(64, b.N-done))
		done += len(dels)
		st.target.Store(int64(done))
		b.StartTimer()
		ds.Add(dels)
		select {
		case <-st.reached:
		case <-time.After(10 * time.Second):
			b.Fatalf("%d of %d deliveries marked done after 10 s", st.done.Load(), done)
		}
	}
}
