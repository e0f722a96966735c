package handover

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

const (
	failoverToInbox   = `failover: {after: 1m, to: page-inbox, back: true, message: "A person will answer you shortly."}`
	failoverToBilling = `failover: {after: 1m, to: billing-bot, back: true}`
	failoverNoBack    = `failover: {after: 1m, to: page-inbox}`
)

// call is the part of a Control request a rule decides.
type call struct {
	app    string
	op     statemachine.Op
	target string
}

func callsOf(rs []threads.Request) []call {
	var out []call
	for _, r := range rs {
		out = append(out, call{r.App, r.Op, r.Target})
	}
	return out
}

// TestRunJob runs one job of each rule synchronously against the
// doubles and checks the calls it made and what it left in the store.
func TestRunJob(t *testing.T) {
	transient := &messenger.Error{Code: 2, IsTransient: true}
	failing := func(since time.Time) func(string) (time.Time, bool) {
		return func(app string) (time.Time, bool) { return since, app == "support-bot" }
	}
	recovered := func(app string, t time.Time) bool { return app == "support-bot" && t.Equal(start.Add(-time.Hour)) }
	failover := store.Job{ThreadKey: thread, Rule: RuleFailover, At: start, Created: start, App: "support-bot", Target: "page-inbox"}
	failback := store.Job{ThreadKey: thread, Rule: RuleFailback, At: start, Created: start.Add(-time.Hour), App: "support-bot", Target: "page-inbox"}
	failbackBilling := failback
	failbackBilling.Target = "billing-bot"
	ret := store.Job{ThreadKey: thread, Rule: RuleReturn, At: start, Created: start.Add(-10 * time.Minute)}
	approve := store.Job{ThreadKey: thread, Rule: RuleRequests, At: start, Created: start, App: "support-bot", Target: "billing-bot", Metadata: "agent wants this thread"}
	closed := store.Job{ThreadKey: thread, Rule: RuleHours, At: start, Created: start, Reason: "held"}
	entry := store.Job{ThreadKey: thread, Rule: RuleEntry, At: start, Created: start, Target: "page-inbox", Metadata: "from an ad"}

	for _, c := range []struct {
		name         string
		rules        string
		owner        string
		quiet        time.Duration // since the thread's last activity
		held         time.Duration // the owner's hold lasts this much longer (negative: lapsed)
		job          store.Job
		failingSince func(string) (time.Time, bool)
		recovered    func(string, time.Time) bool
		controlErr   error
		sendErr      error
		currentErr   error

		calls    []call
		sends    []string
		result   string    // counted result; "" for none
		left     time.Time // the job's At when it stays
		attempts int       // the job's Attempts when it stays
		armed    *store.Job
		ruleErr  string
		metadata string // in the first call's metadata
	}{
		{name: "failover not due yet", rules: failoverToInbox, owner: supportID, job: failover, failingSince: failing(start.Add(-30 * time.Second)),
			left: start.Add(30 * time.Second)},
		{name: "failover, bot recovered", rules: failoverToInbox, owner: supportID, job: failover,
			result: skippedResult},
		{name: "failover due", rules: failoverToInbox, owner: supportID, job: failover, failingSince: failing(start.Add(-2 * time.Minute)),
			calls: []call{{"support-bot", statemachine.OpPass, "page-inbox"}}, sends: []string{"A person will answer you shortly."}, result: firedResult,
			armed:    &store.Job{ThreadKey: thread, Rule: RuleFailback, At: start.Add(time.Minute), Created: start, App: "support-bot", Target: "page-inbox"},
			metadata: "failover: deliveries to support-bot failing since 2026-11-24T09:58:00Z"},
		{name: "failover due, thread idle", rules: failoverNoBack, job: failover, failingSince: failing(start.Add(-2 * time.Minute)),
			calls: []call{{"support-bot", statemachine.OpPass, "page-inbox"}}, result: firedResult},
		{name: "failover due, another app owns", rules: failoverToInbox, owner: billingID, job: failover, failingSince: failing(start.Add(-2 * time.Minute)),
			result: skippedResult},
		{name: "failover due, pass fails", rules: failoverToInbox, owner: supportID, job: failover, failingSince: failing(start.Add(-2 * time.Minute)), controlErr: transient,
			calls: []call{{"support-bot", statemachine.OpPass, "page-inbox"}}, sends: []string{"A person will answer you shortly."},
			left: start.Add(time.Minute), attempts: 1, ruleErr: "rule failover"},
		{name: "failover due, message fails", rules: failoverToInbox, owner: supportID, job: failover, failingSince: failing(start.Add(-2 * time.Minute)), sendErr: transient,
			calls: []call{{"support-bot", statemachine.OpPass, "page-inbox"}}, sends: []string{"A person will answer you shortly."}, result: firedResult,
			armed: &store.Job{ThreadKey: thread, Rule: RuleFailback, At: start.Add(time.Minute), Created: start, App: "support-bot", Target: "page-inbox"}, ruleErr: "failover message not sent"},
		{name: "failover after the rule left the config", rules: escalateRules, job: failover, result: skippedResult},
		{name: "failback to an external fallback: the bot takes", rules: failoverToInbox, owner: inboxID, job: failback, recovered: recovered,
			calls: []call{{"support-bot", statemachine.OpTake, ""}}, result: firedResult, metadata: "failback: support-bot delivers again"},
		{name: "failback from a hosted fallback: it passes back", rules: failoverToBilling, owner: billingID, job: failbackBilling, recovered: recovered,
			calls: []call{{"billing-bot", statemachine.OpPass, "support-bot"}}, result: firedResult},
		{name: "failback, bot not recovered", rules: failoverToInbox, owner: inboxID, job: failback,
			left: start.Add(time.Minute)},
		{name: "failback, a person handed it on", rules: failoverToInbox, owner: supportID, job: failback, recovered: recovered,
			result: skippedResult},
		{name: "failback, thread unreadable", rules: failoverToInbox, owner: inboxID, job: failback, currentErr: errors.New("disk"),
			left: start.Add(time.Minute), attempts: 1, ruleErr: "rule failback: disk"},
		{name: "return to the primary", rules: `return: {after: 10m, to: primary, message: "You are back with our assistant."}`, owner: billingID, quiet: 11 * time.Minute, job: ret,
			calls: []call{{"billing-bot", statemachine.OpPass, "support-bot"}}, sends: []string{"You are back with our assistant."}, result: firedResult, metadata: "return: no activity for 10m0s"},
		{name: "return to idle", rules: `return: {after: 10m, to: idle}`, owner: billingID, quiet: 10 * time.Minute, job: ret,
			calls: []call{{"billing-bot", statemachine.OpRelease, ""}}, result: firedResult},
		{name: "return from the inbox", rules: `return: {after: 10m}`, owner: inboxID, quiet: time.Hour, job: ret,
			calls: []call{{"support-bot", statemachine.OpTake, ""}}, result: firedResult},
		{name: "return from the inbox to idle", rules: `return: {after: 10m, to: idle}`, owner: inboxID, quiet: time.Hour, job: ret,
			calls: []call{{"support-bot", statemachine.OpTake, ""}, {"support-bot", statemachine.OpRelease, ""}}, result: firedResult},
		{name: "return after activity", rules: `return: {after: 10m}`, owner: billingID, quiet: 4 * time.Minute, job: ret,
			left: start.Add(6 * time.Minute)},
		{name: "return held while an agent types", rules: `return: {after: 10m}`, owner: billingID, quiet: time.Hour, held: 2 * time.Minute, job: ret,
			left: start.Add(2 * time.Minute)},
		{name: "return held longer than the quiet time", rules: `return: {after: 10m}`, owner: billingID, quiet: 4 * time.Minute, held: 30 * time.Minute, job: ret,
			left: start.Add(30 * time.Minute)},
		{name: "return once the hold lapsed", rules: `return: {after: 10m}`, owner: billingID, quiet: time.Hour, held: -time.Second, job: ret,
			calls: []call{{"billing-bot", statemachine.OpPass, "support-bot"}}, result: firedResult},
		{name: "return when the bot has it", rules: `return: {after: 10m}`, owner: supportID, quiet: time.Hour, job: ret,
			result: skippedResult},
		{name: "return refused", rules: `return: {after: 10m}`, owner: billingID, quiet: time.Hour, job: ret, controlErr: statemachine.ErrRefused,
			calls: []call{{"billing-bot", statemachine.OpPass, "support-bot"}}, result: skippedResult},
		{name: "return to idle from the inbox, take refused", rules: `return: {after: 10m, to: idle}`, owner: inboxID, quiet: time.Hour, job: ret, controlErr: statemachine.ErrRefused,
			calls: []call{{"support-bot", statemachine.OpTake, ""}}, result: skippedResult},
		{name: "return message fails", rules: `return: {after: 10m, message: "back"}`, owner: billingID, quiet: time.Hour, job: ret, sendErr: transient,
			calls: []call{{"billing-bot", statemachine.OpPass, "support-bot"}}, sends: []string{"back"}, result: firedResult, ruleErr: "return message not sent"},
		{name: "return after the rule left the config", rules: escalateRules, owner: billingID, job: ret, result: skippedResult},
		{name: "approve a request", rules: "requests: {policy: approve}", owner: supportID, job: approve,
			calls: []call{{"support-bot", statemachine.OpPass, "billing-bot"}}, result: firedResult, metadata: "agent wants this thread"},
		{name: "approve after the owner changed", rules: "requests: {policy: approve}", owner: inboxID, job: approve,
			result: skippedResult},
		{name: "closed message", rules: escalateRules + hoursClosed, owner: supportID, job: closed,
			sends: []string{"We are away until 13:00."}, result: firedResult},
		{name: "closed message while idle", rules: escalateRules + hoursClosed, job: closed,
			sends: []string{"We are away until 13:00."}, result: firedResult},
		{name: "closed message fails", rules: escalateRules + hoursClosed, owner: supportID, job: closed, sendErr: transient,
			sends: []string{"We are away until 13:00."}, left: start.Add(time.Minute), attempts: 1, ruleErr: "rule hours"},
		{name: "closed message, nobody hosted holds it", rules: escalateRules + hoursClosed, owner: inboxID, job: closed,
			result: skippedResult},
		{name: "closed message no longer configured", rules: escalateRules, owner: supportID, job: closed,
			result: skippedResult},
		{name: "entry", rules: "entry:\n  - {source: ADS, to: page-inbox}", job: entry,
			calls: []call{{"support-bot", statemachine.OpPass, "page-inbox"}}, result: firedResult, metadata: "from an ad"},
		{name: "entry after the target got it", rules: "entry:\n  - {source: ADS, to: page-inbox}", owner: inboxID, job: entry,
			result: skippedResult},
		{name: "entry, thread unreadable", rules: "entry:\n  - {source: ADS, to: page-inbox}", job: entry, currentErr: errors.New("disk"),
			left: start.Add(time.Minute), attempts: 1, ruleErr: "rule entry: disk"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.rules)
			f.setOwner(c.owner)
			f.setActiveAt(start.Add(-c.quiet))
			if c.held != 0 {
				f.mu.Lock()
				f.holdUntil = start.Add(c.held)
				f.mu.Unlock()
			}
			if c.failingSince != nil {
				f.health.FailingSinceFunc = c.failingSince
			}
			if c.recovered != nil {
				f.health.RecoveredFunc = c.recovered
			}
			f.threads.ControlFunc = scriptedControl(c.controlErr)
			if c.sendErr != nil {
				f.sender.SendFunc = func(context.Context, messenger.Credentials, *messenger.SendRequest) (*messenger.SendResponse, error) {
					return nil, c.sendErr
				}
			}
			if c.currentErr != nil {
				f.threads.CurrentFunc = func(*topology.Page, store.ThreadKey) (store.Thread, error) { return store.Thread{}, c.currentErr }
			}
			f.putJob(c.job)
			f.e.runJob(context.Background(), c.job)

			calls := f.controlCalls()
			if got := callsOf(calls); !equalCalls(got, c.calls) {
				t.Fatalf("calls %+v, want %+v", got, c.calls)
			}
			for _, r := range calls {
				if r.Page != pageID || r.PSID != psid || r.Cause != store.CauseRule || r.By != "rule:"+c.job.Rule {
					t.Fatalf("request %+v", r)
				}
			}
			if c.metadata != "" && calls[0].Metadata != c.metadata {
				t.Fatalf("metadata %q, want %q", calls[0].Metadata, c.metadata)
			}
			if got := f.sentTexts(); strings.Join(got, "|") != strings.Join(c.sends, "|") {
				t.Fatalf("sent %q, want %q", got, c.sends)
			}
			if c.result != "" {
				if n := f.firings(c.job.Rule, c.result); n != 1 {
					t.Fatalf("%s %s: %v", c.job.Rule, c.result, n)
				}
			}
			j, ok := f.job(c.job.Rule)
			switch {
			case c.left.IsZero() && ok:
				t.Fatalf("job left: %+v", j)
			case !c.left.IsZero() && (!ok || !j.At.Equal(c.left) || j.Attempts != c.attempts):
				t.Fatalf("job %+v %v, want at %s with %d attempts", j, ok, c.left, c.attempts)
			}
			if c.armed != nil {
				if got, ok := f.job(c.armed.Rule); !ok || got != *c.armed {
					t.Fatalf("armed %+v %v, want %+v", got, ok, *c.armed)
				}
			} else if c.job.Rule == RuleFailover {
				if got, ok := f.job(RuleFailback); ok {
					t.Fatalf("failback armed: %+v", got)
				}
			}
			errs := f.ruleErrors()
			switch {
			case c.ruleErr == "" && len(errs) > 0:
				t.Fatalf("rule errors %+v", errs)
			case c.ruleErr != "" && (len(errs) == 0 || !strings.Contains(errs[0].Message, c.ruleErr)):
				t.Fatalf("rule errors %+v, want %q", errs, c.ruleErr)
			}
		})
	}
}

func equalCalls(a, b []call) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A failback that cannot be written is a recent error; the failover
// itself is done.
func TestFailoverFailbackNotArmed(t *testing.T) {
	f := newFixture(t, failoverToInbox)
	f.setOwner(supportID)
	f.health.FailingSinceFunc = func(string) (time.Time, bool) { return start.Add(-time.Hour), true }
	j := store.Job{ThreadKey: thread, Rule: RuleFailover, At: start, Created: start, App: "support-bot", Target: "page-inbox"}
	f.putJob(j)
	f.faulty.FailUpdates(1, nil) // the failback's write; the runner's own succeeds
	f.e.runJob(context.Background(), j)
	if errs := f.ruleErrors(); len(errs) != 1 || !strings.Contains(errs[0].Message, "failback not armed") {
		t.Fatalf("rule errors %+v", errs)
	}
	if _, ok := f.job(RuleFailback); ok {
		t.Fatal("failback armed")
	}
	if _, ok := f.job(RuleFailover); ok {
		t.Fatal("failover job left")
	}
	if n := f.firings(RuleFailover, firedResult); n != 1 {
		t.Fatalf("fired %v", n)
	}
}

// NoteDeliveryFailure arms the failover job once, from the first failed
// delivery to a person's bot.
func TestNoteDeliveryFailure(t *testing.T) {
	f := newFixture(t, failoverToInbox)
	note := func(d store.Delivery) {
		t.Helper()
		if err := f.db.Update(context.Background(), func(tx store.Tx) error { return f.e.NoteDeliveryFailure(tx, &d) }); err != nil {
			t.Fatal(err)
		}
	}
	first := store.Delivery{App: "support-bot", Page: pageID, PSID: psid, Channel: "messaging", CreatedAt: start.Add(-10 * time.Second)}
	note(first)
	want := store.Job{ThreadKey: thread, Rule: RuleFailover, At: start.Add(50 * time.Second), Created: start, App: "support-bot", Target: "page-inbox"}
	if j, ok := f.job(RuleFailover); !ok || j != want {
		t.Fatalf("job %+v %v, want %+v", j, ok, want)
	}
	later := first
	later.CreatedAt = start
	f.clk.Advance(time.Second)
	note(later)
	if j, _ := f.job(RuleFailover); j != want {
		t.Fatalf("the second failure moved the job: %+v", j)
	}
	// Standby copies and events without a person do not answer anyone.
	other := store.ThreadKey{Page: pageID, PSID: "7999999999999999"}
	note(store.Delivery{App: "support-bot", Page: pageID, PSID: other.PSID, Channel: "standby", CreatedAt: start})
	note(store.Delivery{App: "support-bot", Page: pageID, Channel: "messaging", CreatedAt: start})
	note(store.Delivery{App: "support-bot", Page: "999", PSID: psid, Channel: "messaging", CreatedAt: start})
	var all []store.Job
	if err := f.db.View(func(tx store.ReadTx) error {
		var err error
		all, err = tx.Jobs(RuleFailover)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("failover jobs %+v", all)
	}

	// No failover rule: nothing.
	g := newFixture(t, escalateRules)
	if err := g.db.Update(context.Background(), func(tx store.Tx) error { return g.e.NoteDeliveryFailure(tx, &first) }); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.job(RuleFailover); ok {
		t.Fatal("failover armed without a rule")
	}
}

// BotRecovered makes the bot's failback jobs due now, and only its own.
func TestBotRecoveredMakesFailbacksDue(t *testing.T) {
	f := newFixture(t, failoverToInbox)
	other := store.ThreadKey{Page: pageID, PSID: "7999999999999999"}
	f.putJob(store.Job{ThreadKey: thread, Rule: RuleFailback, At: start.Add(time.Hour), Created: start, App: "support-bot", Target: "page-inbox"})
	f.putJob(store.Job{ThreadKey: other, Rule: RuleFailback, At: start.Add(time.Hour), Created: start, App: "billing-bot", Target: "page-inbox"})
	f.clk.Advance(time.Minute)
	f.e.BotRecovered("support-bot")
	if j, _ := f.job(RuleFailback); !j.At.Equal(start.Add(time.Minute)) {
		t.Fatalf("failback at %s", j.At)
	}
	var j store.Job
	if err := f.db.View(func(tx store.ReadTx) error { var err error; j, err = tx.Job(other, RuleFailback); return err }); err != nil || !j.At.Equal(start.Add(time.Hour)) {
		t.Fatalf("another bot's failback moved: %+v %v", j, err)
	}
	f.mu.Lock()
	wakes := f.wakes
	f.mu.Unlock()
	if wakes != 1 {
		t.Fatalf("%d wakes", wakes)
	}

	// A store that fails: logged, nothing moves.
	f.faulty.FailUpdates(1, nil)
	f.e.BotRecovered("billing-bot")
	if n := f.logs.FilterMessage("failback jobs not made due").Len(); n != 1 {
		t.Fatalf("logs %+v", f.logs.All())
	}
}
