package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/dispatch"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
	"github.com/batonhq/baton/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	pageID    = "100200300400500"
	psid      = "7123456789012345"
	psid2     = "7123456789012346"
	psid3     = "7123456789012347"
	supportID = "512345678901234"
	billingID = "623456789012345"

	support = "support-bot"
	billing = "billing-bot"
)

// start is a Tuesday, 10:00 UTC.
var start = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// The delivery settings of every fixture: a retry waits 0.5-1s at first,
// at most a minute, and a delivery dies after three attempts.
const (
	backoff     = time.Second
	maxBackoff  = time.Minute
	maxAttempts = 3
)

var env = map[string]string{
	"SUPPORT_SECRET": "support-app-secret", "SUPPORT_VERIFY": "support-verify", "SUPPORT_HOOK": "support-hook-secret",
	"BILLING_SECRET": "billing-app-secret", "BILLING_VERIFY": "billing-verify", "BILLING_HOOK": "billing-hook-secret",
	"PAGE_TOKEN_SUPPORT": "PT_SUPPORT", "PAGE_TOKEN_BILLING": "PT_BILLING", "ADMIN_TOKEN": "admin-secret-0123456789",
}

// configYAML is a page with two hosted bots and the Page Inbox; the
// support bot's concurrency and attempt limit come from setup (0 leaves
// the default).
const configYAML = `
admin: {token_env: ADMIN_TOKEN}
graph: {url: "http://127.0.0.1:1"}
delivery: {backoff: %s, max_backoff: %s, max_attempts: %d}
apps:
  - name: support-bot
    app_id: "512345678901234"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    adapter: {type: http, url: "http://127.0.0.1:1/support", secret_env: SUPPORT_HOOK, concurrency: %d, max_attempts: %d%s}
  - name: billing-bot
    app_id: "623456789012345"
    secret_env: BILLING_SECRET
    verify_token_env: BILLING_VERIFY
    adapter: {type: http, url: "http://127.0.0.1:1/billing", secret_env: BILLING_HOOK}
  - name: page-inbox
    app_id: "263902037430900"
pages:
  - id: "100200300400500"
    primary: support-bot
    secondary: [billing-bot, page-inbox]
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT}
      billing-bot: {token_env: PAGE_TOKEN_BILLING}
`

// setup is what a test changes of the fixture.
type setup struct {
	concurrency int    // the support bot's deliveries in flight; 0: the default
	maxAttempts int    // the support bot's attempt limit; 0: maxAttempts
	maxLanes    int    // lanes per bot in memory; 0: the default
	batch       string // the support bot's adapter.batch, e.g. "{max: 3}"; empty: none
}

// bot is a test double of a bot's adapter. Batches go to BatchFunc, or
// when it is nil one by one to DeliverFunc.
type bot struct {
	DeliverFunc func(ctx context.Context, d *adapters.Delivery) (adapters.Result, error)
	BatchFunc   func(ctx context.Context, ds []*adapters.Delivery) []adapters.Outcome
}

func (b *bot) DeliverBatch(ctx context.Context, ds []*adapters.Delivery) []adapters.Outcome {
	if b.BatchFunc != nil {
		return b.BatchFunc(ctx, ds)
	}
	out := make([]adapters.Outcome, len(ds))
	for i, d := range ds {
		out[i].Result, out[i].Err = b.DeliverFunc(ctx, d)
	}
	return out
}

func (b *bot) Deliver(ctx context.Context, d *adapters.Delivery) (adapters.Result, error) {
	return b.DeliverFunc(ctx, d)
}

// watchedClock is a manual clock that tells when someone waits on it:
// a lane waits with At for its head's next attempt.
type watchedClock struct {
	*clock.Manual
	waits chan time.Time
}

// At reports the wait, then waits on the manual clock.
func (c *watchedClock) At(t time.Time) <-chan time.Time {
	select {
	case c.waits <- t:
	default:
	}
	return c.Manual.At(t)
}

// actionsCall is one call of the Actions hook.
type actionsCall struct {
	del  store.Delivery
	acts []adapters.Action
}

// fixture is a dispatcher on a real store, a real topology and bot
// doubles, with hooks that report on channels.
type fixture struct {
	t      *testing.T
	setup  setup
	store  *storetest.Faulty
	clock  *watchedClock
	top    *topology.Topology
	m      *metrics.Set
	errs   *recent.Errors
	health *dispatch.Health
	log    *zap.Logger
	logs   *observer.ObservedLogs
	bots   map[string]*bot
	hooks  dispatch.Hooks

	attempts  chan *adapters.Delivery // every call of a bot double, as it starts
	actions   chan actionsCall
	recovered chan string
	wakes     chan struct{}

	// owns is the dispatcher's Deps.Owns (nil: every thread is ours).
	owns func(store.ThreadKey) error

	ds     *dispatch.Dispatcher
	cancel context.CancelFunc
	ran    chan error
}

func newFixture(t *testing.T, s setup) *fixture {
	t.Helper()
	batch := ""
	if s.batch != "" {
		batch = ", batch: " + s.batch
	}
	y := fmt.Sprintf(configYAML, backoff, maxBackoff, maxAttempts, s.concurrency, s.maxAttempts, batch)
	cfg, err := config.Parse("test.yaml", []byte(y), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		t:         t,
		setup:     s,
		clock:     &watchedClock{Manual: clock.NewManual(start), waits: make(chan time.Time, 100)},
		m:         metrics.New(),
		health:    dispatch.NewHealth(),
		bots:      map[string]*bot{},
		attempts:  make(chan *adapters.Delivery, 100),
		actions:   make(chan actionsCall, 100),
		recovered: make(chan string, 100),
		wakes:     make(chan struct{}, 100),
	}
	ads := map[string]adapters.Adapter{}
	for _, name := range []string{support, billing} {
		f.bots[name] = &bot{}
		f.answer(name, func(int, *adapters.Delivery) (adapters.Result, error) { return adapters.Result{Status: 200}, nil })
		ads[name] = f.bots[name]
	}
	if f.top, err = topology.New(cfg, ads); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "baton.db"), bolt.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	f.store = storetest.NewFaulty(db)
	core, logs := observer.New(zapcore.InfoLevel)
	f.log, f.logs = zap.New(core), logs
	f.errs = recent.New(50, f.clock, f.log.Named("errors"), f.m.Errors)
	f.hooks = dispatch.Hooks{
		Actions: func(_ context.Context, d *store.Delivery, acts []adapters.Action) {
			f.actions <- actionsCall{del: *d, acts: acts}
		},
		OnRecovered: func(app string) { f.recovered <- app },
		Wake: func() {
			select {
			case f.wakes <- struct{}{}:
			default:
			}
		},
	}
	return f
}

// answer makes the app's bot answer its n-th call (from 1) with fn, after
// reporting the call on f.attempts. Set it before start.
func (f *fixture) answer(app string, fn func(n int, d *adapters.Delivery) (adapters.Result, error)) {
	var mu sync.Mutex
	calls := 0
	f.bots[app].DeliverFunc = func(_ context.Context, d *adapters.Delivery) (adapters.Result, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		cp := *d
		f.attempts <- &cp
		return fn(n, d)
	}
}

// build makes a new dispatcher on the fixture's store, as a restart does.
func (f *fixture) build() *dispatch.Dispatcher {
	f.ds = dispatch.New(dispatch.Deps{Store: f.store, Topology: f.top, Health: f.health, Clock: f.clock,
		Log: f.log.Named("dispatch"), Metrics: f.m, Errors: f.errs,
		Backoff: backoff, MaxBackoff: maxBackoff, Hooks: f.hooks, MaxLanes: f.setup.maxLanes, Owns: f.owns})
	return f.ds
}

// run starts Run; the test's cleanup stops it.
func (f *fixture) run() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.ran = cancel, make(chan error, 1)
	ds, ran := f.ds, f.ran
	go func() { ran <- ds.Run(ctx) }()
	f.t.Cleanup(f.stop)
}

// start builds a dispatcher, loads the outbox and runs it.
func (f *fixture) start() {
	f.t.Helper()
	f.build()
	if err := f.ds.Load(); err != nil {
		f.t.Fatalf("Load: %v", err)
	}
	f.run()
}

// stop cancels Run and waits for it to return.
func (f *fixture) stop() {
	f.t.Helper()
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	select {
	case err := <-f.ran:
		if err != nil {
			f.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		f.t.Fatal("Run did not return within 10s of its context's end")
	}
}

// add enqueues deliveries in one store write and hands them to the
// dispatcher, as ingress does after its commit.
func (f *fixture) add(dels ...store.Delivery) []store.Delivery {
	f.t.Helper()
	dels = f.enqueue(dels...)
	f.ds.Add(dels)
	return dels
}

// enqueue writes deliveries to the outbox and returns them with their ids.
func (f *fixture) enqueue(dels ...store.Delivery) []store.Delivery {
	f.t.Helper()
	out := make([]store.Delivery, len(dels))
	err := f.store.Update(context.Background(), func(tx store.Tx) error {
		copy(out, dels) // the function may run more than once
		for i := range out {
			if err := tx.Enqueue(&out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("enqueue: %v", err)
	}
	return out
}

// next waits for the next call of a bot double.
func (f *fixture) next() *adapters.Delivery {
	f.t.Helper()
	select {
	case d := <-f.attempts:
		return d
	case <-time.After(10 * time.Second):
		f.t.Fatal("no delivery attempt in 10s")
		return nil
	}
}

// noAttempt checks that no bot double was called since the last next.
func (f *fixture) noAttempt() {
	f.t.Helper()
	select {
	case d := <-f.attempts:
		f.t.Fatalf("unexpected attempt %d of %s", d.Attempt, d.ID)
	default:
	}
}

// waitAt waits until a lane waits on the clock, and returns for when.
func (f *fixture) waitAt() time.Time {
	f.t.Helper()
	select {
	case at := <-f.clock.waits:
		return at
	case <-time.After(10 * time.Second):
		f.t.Fatal("no lane waited on the clock in 10s")
		return time.Time{}
	}
}

// reach waits until a lane waits on the clock, and moves the clock there.
func (f *fixture) reach() time.Time {
	f.t.Helper()
	at := f.waitAt()
	f.clock.Set(at)
	return at
}

func (f *fixture) nextActions() actionsCall {
	f.t.Helper()
	select {
	case c := <-f.actions:
		return c
	case <-time.After(10 * time.Second):
		f.t.Fatal("Actions hook not called in 10s")
		return actionsCall{}
	}
}

func (f *fixture) nextWake() {
	f.t.Helper()
	select {
	case <-f.wakes:
	case <-time.After(10 * time.Second):
		f.t.Fatal("Wake hook not called in 10s")
	}
}

// count reads the deliveries counter of an app and result.
func (f *fixture) count(app, result string) int {
	return int(testutil.ToFloat64(f.m.Deliveries.WithLabelValues(app, result)))
}

// outbox reads the pending deliveries' ids from the store.
func (f *fixture) outbox() []uint64 {
	f.t.Helper()
	var ids []uint64
	err := f.store.Store.View(func(tx store.ReadTx) error {
		ds, err := tx.PendingDeliveries(0, 0)
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return ids
}

// dead reads the dead letters from the store.
func (f *fixture) dead() []store.Delivery {
	f.t.Helper()
	var ds []store.Delivery
	err := f.store.Store.View(func(tx store.ReadTx) error {
		var err error
		ds, err = tx.DeadDeliveries(0, 0)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

// stored reads one delivery from the store.
func (f *fixture) stored(id uint64) store.Delivery {
	f.t.Helper()
	var d store.Delivery
	err := f.store.Store.View(func(tx store.ReadTx) error {
		var err error
		d, err = tx.Delivery(id)
		return err
	})
	if err != nil {
		f.t.Fatalf("delivery %d: %v", id, err)
	}
	return d
}

// logged counts the log entries with this message.
func (f *fixture) logged(msg string) int { return f.logs.FilterMessage(msg).Len() }

// eventually polls cond for a condition nothing announces (a done mark's
// write), for at most 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: not %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// event is the n-th message of a person on the page for app, routed
// while the support bot owned the thread.
func event(app, psid string, n int) store.Delivery {
	return store.Delivery{App: app, Page: pageID, PSID: psid, Channel: "messaging", Kind: "message",
		Event: json.RawMessage(fmt.Sprintf(`{"sender":{"id":%q},"message":{"mid":"m_%d","text":"hello %d"}}`, psid, n, n)),
		State: "primary", Owner: supportID, CreatedAt: start}
}

// dlv is the envelope id of a delivery.
func dlv(d store.Delivery) string { return fmt.Sprintf("dlv_%d", d.ID) }
