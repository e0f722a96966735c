package handover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

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
	pageID    = "100200300400500"
	psid      = "7123456789012345"
	supportID = "512345678901234"
	billingID = "623456789012345"
	inboxID   = "263902037430900"
)

var thread = store.ThreadKey{Page: pageID, PSID: psid}

// start is a Tuesday, 10:00 UTC.
var start = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

var env = map[string]string{
	"BATON_ADMIN_TOKEN": "admin-secret-0123456789",
	"SUPPORT_SECRET":    "support-app-secret", "SUPPORT_VERIFY": "support-verify", "SUPPORT_API": "support-api-token", "SUPPORT_HOOK": "support-hook-secret",
	"BILLING_SECRET": "billing-app-secret", "BILLING_VERIFY": "billing-verify", "BILLING_API": "billing-api-token", "BILLING_HOOK": "billing-hook-secret",
	"PAGE_TOKEN_SUPPORT": "PT_SUPPORT", "PAGE_TOKEN_BILLING": "PT_BILLING",
}

// configYAML is a page with a hosted primary (support-bot), a hosted
// secondary (billing-bot) and the Page Inbox; rules are appended.
const configYAML = `
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0", token_env: BATON_ADMIN_TOKEN}
data: unused.db
graph: {url: "http://127.0.0.1:1"}
apps:
  - name: support-bot
    app_id: "512345678901234"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    token_env: SUPPORT_API
    adapter: {type: http, url: "http://127.0.0.1:1/support", secret_env: SUPPORT_HOOK}
  - name: billing-bot
    app_id: "623456789012345"
    secret_env: BILLING_SECRET
    verify_token_env: BILLING_VERIFY
    token_env: BILLING_API
    adapter: {type: http, url: "http://127.0.0.1:1/billing", secret_env: BILLING_HOOK}
  - name: page-inbox
    app_id: "263902037430900"
pages:
  - id: "100200300400500"
    mode: conversation_routing
    primary: support-bot
    secondary: [billing-bot, page-inbox]
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT}
      billing-bot: {token_env: PAGE_TOKEN_BILLING}
`

// mustTopology compiles the config with a rules block for the page.
func mustTopology(tb testing.TB, rules string) *topology.Topology {
	tb.Helper()
	y := configYAML
	if rules != "" {
		var b strings.Builder
		b.WriteString("    rules:\n")
		for _, line := range strings.Split(strings.Trim(rules, "\n"), "\n") {
			b.WriteString("      " + line + "\n")
		}
		y += b.String()
	}
	cfg, err := config.Parse("test.yaml", []byte(y), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		tb.Fatal(err)
	}
	ads := map[string]adapters.Adapter{}
	for _, a := range cfg.Apps {
		if a.Hosted() {
			ads[a.Name] = nopAdapter{}
		}
	}
	top, err := topology.New(cfg, ads)
	if err != nil {
		tb.Fatal(err)
	}
	return top
}

type nopAdapter struct{}

func (nopAdapter) Deliver(context.Context, *adapters.Delivery) (adapters.Result, error) {
	return adapters.Result{Status: 200}, nil
}

// fakeThreads is the thread-control service as the rules see it: a
// function per method.
type fakeThreads struct {
	ControlFunc func(ctx context.Context, req threads.Request) (store.Thread, error)
	CurrentFunc func(p *topology.Page, k store.ThreadKey) (store.Thread, error)
}

func (f *fakeThreads) Control(ctx context.Context, req threads.Request) (store.Thread, error) {
	return f.ControlFunc(ctx, req)
}

func (f *fakeThreads) Current(p *topology.Page, k store.ThreadKey) (store.Thread, error) {
	return f.CurrentFunc(p, k)
}

type fakeSender struct {
	SendFunc func(ctx context.Context, cred messenger.Credentials, req *messenger.SendRequest) (*messenger.SendResponse, error)
}

func (f *fakeSender) Send(ctx context.Context, cred messenger.Credentials, req *messenger.SendRequest) (*messenger.SendResponse, error) {
	return f.SendFunc(ctx, cred, req)
}

type fakeHealth struct {
	FailingSinceFunc func(app string) (time.Time, bool)
	RecoveredFunc    func(app string, t time.Time) bool
}

func (f *fakeHealth) FailingSince(app string) (time.Time, bool) { return f.FailingSinceFunc(app) }
func (f *fakeHealth) Recovered(app string, t time.Time) bool    { return f.RecoveredFunc(app, t) }

// watchedStore signals each finished Update, so that a test waits for
// the runner's writes instead of sleeping.
type watchedStore struct {
	store.Store
	mu      sync.Mutex
	n       int           // Updates finished, failed ones included
	changed chan struct{} // closed and replaced after each Update
}

func (s *watchedStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := s.Store.Update(ctx, fn)
	s.mu.Lock()
	s.n++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return err
}

func (s *watchedStore) updates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *watchedStore) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// fixture is an Engine on a real bbolt file, a manual clock and doubles
// that record what the rules asked for. The doubles' defaults: the
// thread is owned by f.owner, Control succeeds, Send succeeds.
type fixture struct {
	t      *testing.T
	clk    *clock.Manual
	faulty *storetest.Faulty
	db     *watchedStore
	top    *topology.Topology
	page   *topology.Page
	m      *metrics.Set
	errs   *recent.Errors
	logs   *observer.ObservedLogs
	bell   *clock.Bell
	wakes  int

	threads *fakeThreads
	sender  *fakeSender
	health  *fakeHealth

	mu        sync.Mutex
	owner     string // app id; "" idle
	activeAt  time.Time
	holdUntil time.Time
	controls  []threads.Request
	sends     []*messenger.SendRequest

	e *Engine
}

func newFixture(t *testing.T, rules string) *fixture {
	t.Helper()
	raw, err := bolt.Open(filepath.Join(t.TempDir(), "baton.db"), bolt.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := raw.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	f := &fixture{t: t, clk: clock.NewManual(start), top: mustTopology(t, rules), m: metrics.New(), bell: clock.NewBell()}
	f.faulty = storetest.NewFaulty(raw)
	f.db = &watchedStore{Store: f.faulty, changed: make(chan struct{})}
	f.page = f.top.Page(pageID)
	core, logs := observer.New(zapcore.DebugLevel)
	f.logs = logs
	f.errs = recent.New(50, f.clk, zap.NewNop(), f.m.Errors)
	f.threads = &fakeThreads{
		ControlFunc: func(context.Context, threads.Request) (store.Thread, error) { return store.Thread{}, nil },
		CurrentFunc: func(_ *topology.Page, k store.ThreadKey) (store.Thread, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.threadLocked(k), nil
		},
	}
	f.sender = &fakeSender{SendFunc: func(context.Context, messenger.Credentials, *messenger.SendRequest) (*messenger.SendResponse, error) {
		return &messenger.SendResponse{RecipientID: psid, MessageID: "m_1"}, nil
	}}
	f.health = &fakeHealth{
		FailingSinceFunc: func(string) (time.Time, bool) { return time.Time{}, false },
		RecoveredFunc:    func(string, time.Time) bool { return false },
	}
	f.e = New(Deps{Store: f.db, Topology: f.top, Threads: recordingThreads{f}, Sender: recordingSender{f}, Health: f.health, Clock: f.clk,
		Log: zap.New(core), Metrics: f.m, Errors: f.errs, Jobs: f.bell,
		Backoff: func(attempt int) time.Duration { return time.Duration(attempt) * time.Minute },
		Wake:    func() { f.mu.Lock(); f.wakes++; f.mu.Unlock() }})
	return f
}

func (f *fixture) threadLocked(k store.ThreadKey) store.Thread {
	st := statemachine.Idle
	switch {
	case f.owner == supportID:
		st = statemachine.Primary
	case f.owner != "":
		st = statemachine.Secondary
	}
	return store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: st, Owner: f.owner}, ActiveAt: f.activeAt, OwnerActiveAt: f.activeAt, HoldUntil: f.holdUntil}
}

func (f *fixture) setOwner(id string) {
	f.mu.Lock()
	f.owner = id
	f.mu.Unlock()
}

func (f *fixture) setActiveAt(t time.Time) {
	f.mu.Lock()
	f.activeAt = t
	f.mu.Unlock()
}

// recordingThreads records each Control request, then hands it to the
// test's double.
type recordingThreads struct{ f *fixture }

func (r recordingThreads) Control(ctx context.Context, req threads.Request) (store.Thread, error) {
	r.f.mu.Lock()
	r.f.controls = append(r.f.controls, req)
	r.f.mu.Unlock()
	return r.f.threads.Control(ctx, req)
}

func (r recordingThreads) Current(p *topology.Page, k store.ThreadKey) (store.Thread, error) {
	return r.f.threads.Current(p, k)
}

type recordingSender struct{ f *fixture }

func (r recordingSender) Send(ctx context.Context, cred messenger.Credentials, req *messenger.SendRequest) (*messenger.SendResponse, error) {
	r.f.mu.Lock()
	r.f.sends = append(r.f.sends, req)
	r.f.mu.Unlock()
	return r.f.sender.Send(ctx, cred, req)
}

func (f *fixture) controlCalls() []threads.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]threads.Request(nil), f.controls...)
}

func (f *fixture) sentTexts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.sends {
		out = append(out, s.Message.Text)
	}
	return out
}

func (f *fixture) putJob(j store.Job) {
	f.t.Helper()
	if err := f.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutJob(j) }); err != nil {
		f.t.Fatal(err)
	}
}

// job reads the thread's job of rule.
func (f *fixture) job(rule string) (store.Job, bool) {
	f.t.Helper()
	var j store.Job
	var found bool
	err := f.db.View(func(tx store.ReadTx) error {
		var err error
		j, err = tx.Job(thread, rule)
		if err == nil {
			found = true
			return nil
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return j, found
}

func (f *fixture) history() []store.HistoryEntry {
	f.t.Helper()
	var hs []store.HistoryEntry
	if err := f.db.View(func(tx store.ReadTx) error {
		var err error
		hs, err = tx.History(thread)
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	return hs
}

// run starts the job runner; the test's cleanup stops it and checks that
// it returned.
func (f *fixture) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.e.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				f.t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			f.t.Error("Run did not return after its context ended")
		}
	})
}

// waitFor re-checks cond after each store write until it holds.
func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := f.db.next()
		if cond() {
			return
		}
		// A store write announces most conditions; a log line written
		// after the write returns is announced by nothing, so look again
		// soon anyway.
		select {
		case <-ch:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			f.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// advance moves the clock and rings the runner's bell.
func (f *fixture) advance(d time.Duration) {
	f.clk.Advance(d)
	f.bell.Ring()
}

func (f *fixture) ruleErrors() []recent.Error {
	var out []recent.Error
	for _, e := range f.errs.List() {
		if e.Kind == "rule" {
			out = append(out, e)
		}
	}
	return out
}

// mustEvent parses one messaging event the way ingress gets it.
func mustEvent(tb testing.TB, event string) *messenger.Event {
	tb.Helper()
	env, err := messenger.ParseEnvelope([]byte(fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":1718000000000,"messaging":[%s]}]}`, pageID, event)))
	if err != nil {
		tb.Fatal(err)
	}
	return &env.Entry[0].Messaging[0]
}

// mustFixtureEvent parses the first event of a fixture in
// messenger/testdata/fixtures.
func mustFixtureEvent(tb testing.TB, name string) *messenger.Event {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "messenger", "testdata", "fixtures", name))
	if err != nil {
		tb.Fatal(err)
	}
	env, err := messenger.ParseEnvelope(b)
	if err != nil {
		tb.Fatal(err)
	}
	return &env.Entry[0].Messaging[0]
}
