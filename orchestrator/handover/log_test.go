package handover

import (
	"context"
	"testing"

	"go.uber.org/zap/zaptest/observer"

	"github.com/batonhq/baton/store"
)

// A rule's firing is one info line naming the rule, what it did and the
// thread: once when an event arms it, once when its job has run. The
// person's text (the escalation word) is not in it.
func TestRuleFiringLogged(t *testing.T) {
	f := newFixture(t, escalateHuman)
	ev := mustEvent(t, textHuman)
	th := store.Thread{ThreadKey: thread}
	var fired Firing
	if err := f.db.Update(context.Background(), func(tx store.Tx) error {
		var err error
		fired, err = f.e.Arm(tx, f.page, f.top.App("support-bot"), ev, &th, start)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f.e.Fired([]Firing{fired})
	j, ok := f.job(RuleEscalate)
	if !ok {
		t.Fatal("no escalation job armed")
	}
	f.e.runJob(context.Background(), j)

	lines := f.logs.FilterMessage("rule firing").All()
	want := []map[string]any{
		{"rule": RuleEscalate, "result": armedResult, "page": pageID, "psid": psid},
		{"rule": RuleEscalate, "result": firedResult, "page": pageID, "psid": psid, "target": "billing-bot", "attempts": int64(1)},
	}
	if len(lines) != len(want) {
		t.Fatalf("rule firing lines %+v, want %d", lines, len(want))
	}
	for i, w := range want {
		checkFields(t, lines[i], w)
	}
}

func checkFields(t *testing.T, e observer.LoggedEntry, want map[string]any) {
	t.Helper()
	if e.Level.String() != "info" {
		t.Errorf("%q at %s, want info", e.Message, e.Level)
	}
	got := e.ContextMap()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: %s = %v (%T), want %v; all %v", e.Message, k, got[k], got[k], v, got)
		}
	}
	for k, v := range got {
		if s, ok := v.(string); ok && (s == "I want a HUMAN now" || k == "text" || k == "message") {
			t.Errorf("%q carries the person's text in %s", e.Message, k)
		}
	}
}
