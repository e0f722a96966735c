package threads_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
	"github.com/batonhq/baton/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	page       = "100200300400500"
	legacyPage = "100200300400501"
	psid       = "7123456789012345"
	supportID  = "512345678901234"
	billingID  = "623456789012345"
	inboxID    = "263902037430900"
)

const yaml = `
admin: {token_env: ADMIN}
graph: {url: "http://127.0.0.1:1"}
apps:
  - name: support-bot
    app_id: "512345678901234"
    secret_env: SECRET
    verify_token_env: VERIFY
    token_env: SUPPORT_API
    adapter: {type: http, url: "http://127.0.0.1:1/support", secret_env: HOOK}
  - name: billing-bot
    app_id: "623456789012345"
    secret_env: SECRET
    verify_token_env: VERIFY
    token_env: BILLING_API
    adapter: {type: http, url: "http://127.0.0.1:1/billing", secret_env: HOOK}
  - name: page-inbox
    app_id: "263902037430900"
pages:
  - id: "100200300400500"
    mode: conversation_routing
    primary: support-bot
    secondary: [billing-bot, page-inbox]
    takeover: [support-bot]
    tokens:
      support-bot: {token_env: PT_SUPPORT}
      billing-bot: {token_env: PT_BILLING}
  - id: "100200300400501"
    mode: legacy
    primary: support-bot
    secondary: [page-inbox]
    tokens:
      support-bot: {token_env: PT_SUPPORT}
`

var env = map[string]string{"ADMIN": "admin-token-0123456789", "SECRET": "app-secret", "VERIFY": "verify", "HOOK": "hook-secret-0123456789",
	"SUPPORT_API": "support-api-0123456789", "BILLING_API": "billing-api-0123456789", "PT_SUPPORT": "PT_SUPPORT", "PT_BILLING": "PT_BILLING"}

// graph is a Graph whose answers a test sets; it records the calls.
type graph struct {
	mu    sync.Mutex
	calls []string // "op psid target token"
	// control answers pass, take, request, release and extend.
	control func(op, psid, target string) error
	owner   func(psid string) (messenger.ThreadOwner, error)
}

func (g *graph) record(op, psid, target string, c messenger.Credentials) func(op, psid, target string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, op+" "+psid+" "+target+" "+c.AccessToken)
	if g.control == nil {
		return func(string, string, string) error { return nil }
	}
	return g.control
}

func (g *graph) Calls() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.calls...)
}

func (g *graph) PassThreadControl(_ context.Context, c messenger.Credentials, p, t messenger.ID, _ string) error {
	return g.record("pass", string(p), string(t), c)("pass", string(p), string(t))
}
func (g *graph) TakeThreadControl(_ context.Context, c messenger.Credentials, p messenger.ID, _ string) error {
	return g.record("take", string(p), "", c)("take", string(p), "")
}
func (g *graph) RequestThreadControl(_ context.Context, c messenger.Credentials, p messenger.ID, _ string) error {
	return g.record("request", string(p), "", c)("request", string(p), "")
}
func (g *graph) ReleaseThreadControl(_ context.Context, c messenger.Credentials, p messenger.ID, _ string) error {
	return g.record("release", string(p), "", c)("release", string(p), "")
}
func (g *graph) ExtendThreadControl(_ context.Context, c messenger.Credentials, p messenger.ID, _ time.Duration) error {
	return g.record("extend", string(p), "", c)("extend", string(p), "")
}
func (g *graph) ThreadOwner(_ context.Context, c messenger.Credentials, p messenger.ID) (messenger.ThreadOwner, error) {
	g.record("thread_owner", string(p), "", c)
	g.mu.Lock()
	owner := g.owner
	g.mu.Unlock()
	if owner == nil {
		return messenger.ThreadOwner{}, errors.New("thread_owner not expected in this test")
	}
	return owner(string(p))
}

type nopAdapter struct{}

func (nopAdapter) Deliver(context.Context, *adapters.Delivery) (adapters.Result, error) {
	return adapters.Result{}, nil
}

// env is a thread-control service on a real bbolt file.
type fixture struct {
	t       *testing.T
	clock   *clock.Manual
	store   *storetest.Faulty
	graph   *graph
	top     *topology.Topology
	errors  *recent.Errors
	metrics *metrics.Set
	svc     *threads.Service
	woken   chan struct{}
	seen    []store.Thread // passed to the ledger's transition hook
	mu      sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	top, err := topology.New(cfg, map[string]adapters.Adapter{"support-bot": nopAdapter{}, "billing-bot": nopAdapter{}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "baton.db"), bolt.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, clock: clock.NewManual(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)), store: storetest.NewFaulty(db),
		graph: &graph{}, top: top, metrics: metrics.New(), woken: make(chan struct{}, 100)}
	f.errors = recent.New(50, f.clock, zap.NewNop(), f.metrics.Errors)
	ledger := threads.NewLedger(f.metrics.Transitions, func(_ store.Tx, _ *topology.Page, th *store.Thread, _ time.Time) error {
		f.mu.Lock()
		f.seen = append(f.seen, *th)
		f.mu.Unlock()
		return nil
	}, nil, nil)
	f.svc = threads.New(threads.Deps{Store: f.store, Topology: top, Ledger: ledger, Graph: f.graph, Clock: f.clock, Log: zap.NewNop(),
		Metrics: f.metrics, Errors: f.errors, Wake: func() { f.woken <- struct{}{} }})
	return f
}

func key(p string) store.ThreadKey { return store.ThreadKey{Page: p, PSID: psid} }

// put stores a thread owned by owner (empty: idle), expiring in 24 h.
func (f *fixture) put(k store.ThreadKey, owner string) {
	f.t.Helper()
	th := store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Idle}}
	if owner != "" {
		th.Owner, th.ExpiresAt = owner, f.clock.Now().Add(24*time.Hour)
		th.State = statemachine.Secondary
		if owner == supportID {
			th.State = statemachine.Primary
		}
	}
	if err := f.store.Update(context.Background(), func(tx store.Tx) error { return tx.PutThread(th) }); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) thread(k store.ThreadKey) (store.Thread, []store.HistoryEntry, []store.Intent) {
	f.t.Helper()
	var th store.Thread
	var hist []store.HistoryEntry
	var intents []store.Intent
	err := f.store.Store.View(func(tx store.ReadTx) error {
		var err error
		if th, err = tx.Thread(k); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if hist, err = tx.History(k); err != nil {
			return err
		}
		intents, err = tx.Intents()
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return th, hist, intents
}

func (f *fixture) errorsOf(kind string) []recent.Error {
	var out []recent.Error
	for _, e := range f.errors.List() {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// eventually waits for cond, a condition no event announces (a loop in
// the service acting on the moved clock).
func (f *fixture) eventually(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func notOwner() error {
	return &messenger.Error{HTTPStatus: 400, Code: 100, Message: "(#100) calling app is not the thread owner", Type: "OAuthException"}
}

func lost() error {
	return &messenger.TransportError{Op: "pass_thread_control", Sent: true, Err: context.DeadlineExceeded}
}
