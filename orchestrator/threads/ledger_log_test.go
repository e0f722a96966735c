package threads_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// Every recorded change of owner is one info line, with the thread, the
// apps by name and the cause, logged once the change is durable: a
// transaction that rolls back logs nothing, nor does evidence of the
// owner that stands.
func TestLedgerLogsEachOwnerChange(t *testing.T) {
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
	defer db.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	ledger := threads.NewLedger(metrics.New().Transitions, nil, nil, zap.New(core))
	p := top.Page(page)
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	k := store.ThreadKey{Page: page, PSID: psid}
	observe := func(owner string, at time.Time, fail error) error {
		return db.Update(context.Background(), func(tx store.Tx) error {
			th, err := threads.Load(tx, p, k)
			if err != nil {
				return err
			}
			if err := ledger.Apply(tx, p, &th, statemachine.Input{Op: statemachine.OpObserve, Target: owner, At: at},
				store.HistoryEntry{Event: "pass_thread_control", By: "meta", Cause: store.CauseWebhook}); err != nil {
				return err
			}
			if err := tx.PutThread(th); err != nil {
				return err
			}
			return fail
		})
	}
	rolledBack := errors.New("rolled back")
	if err := observe(billingID, at, rolledBack); !errors.Is(err, rolledBack) {
		t.Fatalf("rolled-back write: %v", err)
	}
	if n := logs.Len(); n != 0 {
		t.Fatalf("a rolled-back change logged: %+v", logs.All())
	}
	if err := observe(billingID, at, nil); err != nil {
		t.Fatal(err)
	}
	if err := observe(billingID, at.Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if err := observe(inboxID, at.Add(2*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	lines := logs.FilterMessage("thread owner changed").All()
	want := []map[string]any{
		{"page": page, "psid": psid, "from": "", "to": "billing-bot", "event": "pass_thread_control", "by": "meta", "cause": "webhook"},
		{"page": page, "psid": psid, "from": "billing-bot", "to": "page-inbox", "event": "pass_thread_control", "by": "meta", "cause": "webhook"},
	}
	if len(lines) != len(want) || logs.Len() != len(want) {
		t.Fatalf("lines %+v, want %d", logs.All(), len(want))
	}
	for i, w := range want {
		if lines[i].Level != zapcore.InfoLevel {
			t.Errorf("line %d at %s, want info", i, lines[i].Level)
		}
		got := lines[i].ContextMap()
		for f, v := range w {
			if got[f] != v {
				t.Errorf("line %d: %s = %v, want %v (all %v)", i, f, got[f], v, got)
			}
		}
	}
}
