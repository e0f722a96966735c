package ingress

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/handover"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// rulesFunc is a Rules whose Arm a test sets.
type rulesFunc func() handover.Firing

func (f rulesFunc) Arm(store.Tx, *topology.Page, *topology.App, *messenger.Event, *store.Thread, time.Time) (handover.Firing, error) {
	return f(), nil
}
func (rulesFunc) Fired([]handover.Firing) {}

type nopAdapter struct{}

func (nopAdapter) Deliver(_ context.Context, _ *adapters.Delivery) (adapters.Result, error) {
	return adapters.Result{}, nil
}

// The background loops are woken only when a webhook armed something: a
// new owner (through the ledger) or a rule's job; a busy page's ordinary
// messages cost them nothing.
func TestWakesOnlyWhenSomethingWasArmed(t *testing.T) {
	const yaml = `
admin: {token_env: ADMIN}
apps:
  - name: bot
    app_id: "512345678901234"
    secret_env: SECRET
    verify_token_env: VERIFY
    adapter: {type: http, url: "http://127.0.0.1:1/", secret_env: SECRET}
  - name: other
    app_id: "623456789012345"
pages:
  - id: "100200300400500"
    primary: bot
    secondary: [other]
    tokens: {bot: {token_env: TOKEN}}
`
	env := map[string]string{"ADMIN": "admin-token-0123456789", "SECRET": "app-secret", "VERIFY": "v", "TOKEN": "T"}
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	top, err := topology.New(cfg, map[string]adapters.Adapter{"bot": nopAdapter{}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var woken atomic.Int64
	wake := func() { woken.Add(1) }
	m := metrics.New()
	clk := clock.NewManual(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	armed := false
	in := New(Deps{Store: db, Topology: top, Ledger: threads.NewLedger(m.Transitions, nil, wake, nil),
		Rules: rulesFunc(func() handover.Firing {
			if armed {
				return handover.Firing{Rule: handover.RuleEscalate, Result: "armed"}
			}
			return handover.Firing{}
		}),
		Clock: clk, Log: zap.NewNop(), Metrics: m, Errors: recent.New(10, clk, zap.NewNop(), m.Errors), Webhooks: cfg.Webhooks,
		Deliver: func([]store.Delivery) {}, Reconcile: func(store.ThreadKey, string) {}, Wake: wake})
	r := mux.NewRouter()
	in.Register(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	n := 0
	post := func(item string) {
		t.Helper()
		n++
		body := []byte(fmt.Sprintf(`{"object":"page","entry":[{"id":"100200300400500","time":1,"messaging":[%s]}]}`, item))
		req, _ := http.NewRequest("POST", srv.URL+"/webhooks/bot", bytes.NewReader(body))
		req.Header.Set(messenger.HeaderSignature256, messenger.Sign([]byte("app-secret"), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	}
	ts := clk.Now().Add(-time.Minute).UnixMilli()
	message := func() string {
		return fmt.Sprintf(`{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":%d,"message":{"mid":"m_%d","text":"hi"}}`, ts+int64(n), n)
	}
	for range 20 {
		post(message()) // idle thread, the default app's messaging copy: nothing armed
	}
	if w := woken.Load(); w != 0 {
		t.Fatalf("%d wake-ups for messages that armed nothing", w)
	}
	post(fmt.Sprintf(`{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":%d,"pass_thread_control":{"new_owner_app_id":"512345678901234"}}`, ts+100))
	if w := woken.Load(); w != 1 {
		t.Fatalf("%d wake-ups after a new owner, want 1", w)
	}
	armed = true
	post(message())
	if w := woken.Load(); w != 2 {
		t.Fatalf("%d wake-ups after a job was armed, want 2", w)
	}
}
