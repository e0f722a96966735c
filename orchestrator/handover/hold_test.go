package handover

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// TestHold records an owner's activity on a real store and checks where
// it leaves the hold and the return job.
func TestHold(t *testing.T) {
	const rules = `return: {after: 10m}`
	for _, c := range []struct {
		name      string
		owner     string
		quiet     time.Duration // since the thread's last activity
		holdUntil time.Time     // before the call
		app       string
		kind      string
		dur       time.Duration

		err       error
		wantHold  time.Time
		wantJobAt time.Time
	}{
		{name: "typing holds the default time", owner: billingID, quiet: 9 * time.Minute, app: "billing-bot", kind: ActivityTyping,
			wantHold: start.Add(DefaultTypingHold), wantJobAt: start.Add(DefaultTypingHold)},
		{name: "a claim for 30m", owner: billingID, quiet: 9 * time.Minute, app: "billing-bot", kind: ActivityClaimed, dur: 30 * time.Minute,
			wantHold: start.Add(30 * time.Minute), wantJobAt: start.Add(30 * time.Minute)},
		{name: "a short hold does not bring the return forward", owner: billingID, quiet: time.Minute, app: "billing-bot", kind: ActivityTyping, dur: time.Minute,
			wantHold: start.Add(time.Minute), wantJobAt: start.Add(9 * time.Minute)},
		{name: "typing does not shorten a claim", owner: billingID, quiet: time.Hour, holdUntil: start.Add(20 * time.Minute), app: "billing-bot", kind: ActivityTyping,
			wantHold: start.Add(20 * time.Minute), wantJobAt: start.Add(20 * time.Minute)},
		{name: "released after the quiet time: the return is due now", owner: billingID, quiet: time.Hour, holdUntil: start.Add(20 * time.Minute), app: "billing-bot", kind: ActivityReleased,
			wantJobAt: start},
		{name: "released before the quiet time ends", owner: billingID, quiet: 4 * time.Minute, holdUntil: start.Add(20 * time.Minute), app: "billing-bot", kind: ActivityReleased,
			wantJobAt: start.Add(6 * time.Minute)},
		{name: "not the owner", owner: supportID, quiet: time.Hour, app: "billing-bot", kind: ActivityClaimed, err: ErrNotHolder, wantJobAt: start},
		{name: "idle", quiet: time.Hour, app: "billing-bot", kind: ActivityTyping, err: ErrNotHolder, wantJobAt: start},
		{name: "unknown kind", owner: billingID, app: "billing-bot", kind: "dancing", err: ErrBadActivity, wantJobAt: start},
		{name: "too long", owner: billingID, app: "billing-bot", kind: ActivityClaimed, dur: 2 * time.Hour, err: ErrBadActivity, wantJobAt: start},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, rules)
			st := statemachine.Secondary
			if c.owner == supportID {
				st = statemachine.Primary
			} else if c.owner == "" {
				st = statemachine.Idle
			}
			th := store.Thread{ThreadKey: thread, Thread: statemachine.Thread{State: st, Owner: c.owner, ExpiresAt: start.Add(24 * time.Hour)},
				ActiveAt: start.Add(-c.quiet), HoldUntil: c.holdUntil}
			if err := f.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutThread(th) }); err != nil {
				t.Fatal(err)
			}
			f.putJob(store.Job{ThreadKey: thread, Rule: RuleReturn, At: start, Created: start.Add(-time.Hour)})

			got, err := f.e.Hold(context.Background(), Activity{Page: pageID, PSID: psid, App: f.top.App(c.app), Kind: c.kind, Agent: "anna", For: c.dur})
			if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if err == nil && !got.HoldUntil.Equal(c.wantHold) {
				t.Errorf("hold until %s, want %s", got.HoldUntil, c.wantHold)
			}
			if err == nil && c.kind != ActivityReleased && got.HeldBy != "anna" && c.holdUntil.IsZero() {
				t.Errorf("held by %q", got.HeldBy)
			}
			if j, ok := f.job(RuleReturn); !ok || !j.At.Equal(c.wantJobAt) {
				t.Errorf("return job at %s (%v), want %s", j.At, ok, c.wantJobAt)
			}
		})
	}
}
