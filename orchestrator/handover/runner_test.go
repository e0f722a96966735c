package handover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/storetest"
)

const escalateRules = `
escalate:
  - name: human
    words: [human]
    to: billing-bot
    message: "Connecting you with billing."`

// escalateJob is the job armEscalate writes for "human" at now.
func escalateJob(now time.Time, message string) store.Job {
	return store.Job{ThreadKey: thread, Rule: RuleEscalate, At: now, Created: now, Target: "billing-bot",
		Metadata: "escalation human: word human", Reason: "human: word human", Message: message}
}

// scriptedControl answers the Control calls with errs in turn, then nil.
func scriptedControl(errs ...error) func(context.Context, threads.Request) (store.Thread, error) {
	var mu sync.Mutex
	return func(context.Context, threads.Request) (store.Thread, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) == 0 {
			return store.Thread{}, nil
		}
		err := errs[0]
		errs = errs[1:]
		return store.Thread{}, err
	}
}

func (f *fixture) firings(rule, result string) float64 {
	return testutil.ToFloat64(f.m.Rules.WithLabelValues(rule, result))
}

// A Graph failure worth retrying puts the job back after Backoff; the
// runner runs it again when the clock gets there, and deletes it once
// the pass went through.
func TestRunnerRetriesTransientAndUncertainFailures(t *testing.T) {
	f := newFixture(t, escalateRules)
	uncertain := &messenger.TransportError{Op: "pass_thread_control", Sent: true, Err: context.DeadlineExceeded}
	f.threads.ControlFunc = scriptedControl(&messenger.Error{Code: 2, IsTransient: true, Message: "An unexpected error has occurred."}, uncertain)
	f.putJob(escalateJob(start, ""))
	f.run()

	f.waitFor("the first retry armed", func() bool { j, ok := f.job(RuleEscalate); return ok && j.Attempts == 1 })
	j, _ := f.job(RuleEscalate)
	if want := start.Add(time.Minute); !j.At.Equal(want) {
		t.Fatalf("retry at %s, want now+Backoff(1) = %s", j.At, want)
	}
	if errs := f.ruleErrors(); len(errs) != 1 || !strings.Contains(errs[0].Message, "rule escalate") || errs[0].Page != pageID || errs[0].PSID != psid {
		t.Fatalf("recent errors %+v", errs)
	}
	if n := len(f.controlCalls()); n != 1 {
		t.Fatalf("%d Control calls before the retry is due", n)
	}

	f.advance(time.Minute)
	f.waitFor("the second retry armed", func() bool { j, ok := f.job(RuleEscalate); return ok && j.Attempts == 2 })
	j, _ = f.job(RuleEscalate)
	if want := start.Add(time.Minute + 2*time.Minute); !j.At.Equal(want) {
		t.Fatalf("second retry at %s, want %s", j.At, want)
	}
	if n := len(f.ruleErrors()); n != 2 {
		t.Fatalf("%d rule errors after the uncertain failure", n)
	}

	f.advance(2 * time.Minute)
	f.waitFor("the job done", func() bool { _, ok := f.job(RuleEscalate); return !ok })
	calls := f.controlCalls()
	if len(calls) != 3 {
		t.Fatalf("%d Control calls", len(calls))
	}
	c := calls[2]
	if c.App != "support-bot" || c.Op != statemachine.OpPass || c.Target != "billing-bot" || c.By != "rule:escalate" || c.Cause != store.CauseRule || c.PSID != psid {
		t.Fatalf("the pass: %+v", c)
	}
	if n := f.firings(RuleEscalate, firedResult); n != 1 {
		t.Fatalf("fired %v times", n)
	}
	if n := f.firings(RuleEscalate, failedResult); n != 0 {
		t.Fatalf("failed %v times", n)
	}
}

// A failure of Baton's own (the intent not written: a store deadlock, a
// lease just lost) is not Meta's refusal: the job is tried again, as a
// transient error of Meta's is.
func TestRunnerRetriesItsOwnFailures(t *testing.T) {
	f := newFixture(t, escalateRules)
	f.threads.ControlFunc = scriptedControl(errors.New("record intent: deadlock detected"))
	f.putJob(escalateJob(start, ""))
	f.run()
	f.waitFor("the retry armed", func() bool { j, ok := f.job(RuleEscalate); return ok && j.Attempts == 1 })
	f.advance(time.Minute)
	f.waitFor("the job done", func() bool { _, ok := f.job(RuleEscalate); return !ok })
	if n := len(f.controlCalls()); n != 2 {
		t.Fatalf("%d Control calls, want the failed one and its retry", n)
	}
	if n := f.firings(RuleEscalate, firedResult); n != 1 {
		t.Fatalf("fired %v times", n)
	}
}

// After jobMaxAttempts failures the job is failed and deleted.
func TestRunnerGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFixture(t, escalateRules)
	f.threads.ControlFunc = func(context.Context, threads.Request) (store.Thread, error) {
		return store.Thread{}, &messenger.Error{Code: 2, IsTransient: true}
	}
	f.putJob(escalateJob(start, ""))
	f.run()
	for i := 1; i < jobMaxAttempts; i++ {
		f.waitFor(fmt.Sprintf("retry %d armed", i), func() bool { j, ok := f.job(RuleEscalate); return ok && j.Attempts == i })
		f.advance(time.Duration(i) * time.Minute)
	}
	f.waitFor("the job dropped", func() bool { _, ok := f.job(RuleEscalate); return !ok })
	if n := len(f.controlCalls()); n != jobMaxAttempts {
		t.Fatalf("%d Control calls, want %d", n, jobMaxAttempts)
	}
	if n := f.firings(RuleEscalate, failedResult); n != 1 {
		t.Fatalf("failed %v times", n)
	}
	if n := len(f.ruleErrors()); n != jobMaxAttempts {
		t.Fatalf("%d rule errors", n)
	}
}

// Outcomes that no retry changes end the job at once.
func TestRunnerFinalOutcomes(t *testing.T) {
	for _, c := range []struct {
		name       string
		err        error
		result     string
		ruleErrors int
	}{
		{"refused by the state machine", fmt.Errorf("pass thread %s: %w", thread, statemachine.ErrRefused), skippedResult, 0},
		{"meta's invalid parameter", &messenger.Error{Code: 100, Message: "(#100) Invalid parameter"}, failedResult, 1},
		{"meta's not the owner", &messenger.Error{Code: 10, Subcode: 2018300}, failedResult, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, escalateRules)
			f.threads.ControlFunc = scriptedControl(c.err)
			f.putJob(escalateJob(start, ""))
			f.run()
			f.waitFor("the job gone", func() bool { _, ok := f.job(RuleEscalate); return !ok })
			if n := len(f.controlCalls()); n != 1 {
				t.Fatalf("%d Control calls", n)
			}
			if n := f.firings(RuleEscalate, c.result); n != 1 {
				t.Fatalf("%s: %v", c.result, n)
			}
			if n := len(f.ruleErrors()); n != c.ruleErrors {
				t.Fatalf("rule errors %+v", f.ruleErrors())
			}
		})
	}
}

// A job the rule replaced while it ran (a new Created) stands.
func TestRunnerKeepsAJobReplacedWhileItRan(t *testing.T) {
	f := newFixture(t, escalateRules)
	replacement := escalateJob(start.Add(time.Hour), "")
	replacement.Created = start.Add(time.Second)
	f.threads.ControlFunc = func(ctx context.Context, _ threads.Request) (store.Thread, error) {
		return store.Thread{}, f.db.Update(ctx, func(tx store.Tx) error { return tx.PutJob(replacement) })
	}
	f.putJob(escalateJob(start, ""))
	f.run()
	// Three writes: the test's job, the replacement, the runner's own.
	f.waitFor("the runner's write", func() bool { return f.db.updates() == 3 })
	if n := f.firings(RuleEscalate, firedResult); n != 1 {
		t.Fatalf("fired %v", n)
	}
	if j, ok := f.job(RuleEscalate); !ok || !j.Created.Equal(replacement.Created) {
		t.Fatalf("the replacement was deleted: %+v %v", j, ok)
	}
	f.e.runJob(context.Background(), escalateJob(start, "")) // the old job once more: still not deleted
	if j, ok := f.job(RuleEscalate); !ok || !j.Created.Equal(replacement.Created) || !j.At.Equal(replacement.At) {
		t.Fatalf("job %+v %v", j, ok)
	}
}

// The escalation's message is said once, before the first pass, and not
// again when a failed pass is retried.
func TestEscalationMessageSentOnce(t *testing.T) {
	f := newFixture(t, escalateRules)
	f.threads.ControlFunc = scriptedControl(&messenger.Error{Code: 2, IsTransient: true})
	f.putJob(escalateJob(start, "Connecting you with billing."))
	f.run()
	f.waitFor("the retry armed", func() bool { j, ok := f.job(RuleEscalate); return ok && j.Attempts == 1 })
	if got := f.sentTexts(); len(got) != 1 || got[0] != "Connecting you with billing." {
		t.Fatalf("sent %q", got)
	}
	f.mu.Lock()
	s := f.sends[0]
	f.mu.Unlock()
	if s.Recipient.ID != psid || s.MessagingType != "RESPONSE" {
		t.Fatalf("send %+v", s)
	}
	f.advance(time.Minute)
	f.waitFor("the job done", func() bool { _, ok := f.job(RuleEscalate); return !ok })
	if got := f.sentTexts(); len(got) != 1 {
		t.Fatalf("sent %q after the retry", got)
	}
	if n := len(f.controlCalls()); n != 2 {
		t.Fatalf("%d passes", n)
	}
}

// A message that cannot be sent is a recent error; the pass still goes.
func TestEscalationMessageFailureDoesNotStopThePass(t *testing.T) {
	f := newFixture(t, escalateRules)
	f.sender.SendFunc = func(context.Context, messenger.Credentials, *messenger.SendRequest) (*messenger.SendResponse, error) {
		return nil, &messenger.Error{Code: 551, Subcode: 1545041, Message: "This person isn't available right now."}
	}
	f.e.runJob(context.Background(), escalateJob(start, "Connecting you with billing."))
	if _, ok := f.job(RuleEscalate); ok {
		t.Fatal("job left")
	}
	if n := len(f.controlCalls()); n != 1 {
		t.Fatalf("%d passes", n)
	}
	errs := f.ruleErrors()
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "escalation message not sent") || errs[0].App != "support-bot" {
		t.Fatalf("recent errors %+v", errs)
	}
	if n := testutil.ToFloat64(f.m.GraphCalls.WithLabelValues("send", "error_551")); n != 1 {
		t.Fatalf("graph calls send/error_551: %v", n)
	}
}

// A write that fails after a run is logged and leaves the job, which
// runs again.
func TestRunnerSurvivesAFailedJobUpdate(t *testing.T) {
	f := newFixture(t, escalateRules)
	f.putJob(escalateJob(start, ""))
	f.faulty.FailUpdates(1, nil)
	f.run()
	f.waitFor("the failed update logged", func() bool { return f.logs.FilterMessage("job not updated; it runs again after a backoff").Len() == 1 })
	if _, ok := f.job(RuleEscalate); !ok {
		t.Fatal("the job went though its outcome was not written")
	}
	f.clk.Advance(time.Second) // the backoff
	f.waitFor("the job done on its second run", func() bool { _, ok := f.job(RuleEscalate); return !ok })
	if n := len(f.controlCalls()); n != 2 {
		t.Fatalf("%d Control calls, want 2 (the run whose update failed, and the next)", n)
	}
	logged := f.logs.FilterMessage("job not updated; it runs again after a backoff").All()
	if len(logged) != 1 {
		t.Fatalf("logs %+v", f.logs.All())
	}
	if err, _ := logged[0].ContextMap()["error"].(string); !strings.Contains(err, storetest.ErrInjected.Error()) {
		t.Fatalf("logged %+v", logged[0].ContextMap())
	}
}

// Run returns once its context ends, after the jobs it started.
func TestRunReturnsAfterJobsInFlight(t *testing.T) {
	f := newFixture(t, escalateRules)
	started, returned := make(chan struct{}), make(chan struct{})
	f.threads.ControlFunc = func(ctx context.Context, _ threads.Request) (store.Thread, error) {
		close(started)
		<-ctx.Done()
		defer close(returned)
		return store.Thread{}, fmt.Errorf("pass: %w", ctx.Err())
	}
	f.putJob(escalateJob(start, ""))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.e.Run(ctx) }()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	select {
	case <-returned:
	default:
		t.Fatal("Run returned before the job in flight")
	}
	// Cut short by the shutdown: the job stays for the next start.
	if j, ok := f.job(RuleEscalate); !ok || j.Attempts != 0 {
		t.Fatalf("job %+v %v", j, ok)
	}
	if n := len(f.ruleErrors()); n != 0 {
		t.Fatalf("a shutdown is not a rule error: %+v", f.ruleErrors())
	}
}

// Jobs of rules or pages that left the config are dropped.
func TestRunnerDropsJobsItCannotRun(t *testing.T) {
	f := newFixture(t, escalateRules)
	f.e.runJob(context.Background(), store.Job{ThreadKey: thread, Rule: "bogus", At: start, Created: start})
	if n := f.firings("bogus", skippedResult); n != 1 {
		t.Fatalf("skipped %v", n)
	}
	if errs := f.ruleErrors(); len(errs) != 1 || !strings.Contains(errs[0].Message, `unknown rule "bogus"`) {
		t.Fatalf("recent errors %+v", errs)
	}
	other := store.ThreadKey{Page: "999", PSID: psid}
	f.putJob(store.Job{ThreadKey: other, Rule: RuleEscalate, At: start, Created: start, Target: "billing-bot"})
	f.e.runJob(context.Background(), store.Job{ThreadKey: other, Rule: RuleEscalate, At: start, Created: start, Target: "billing-bot"})
	if n := len(f.controlCalls()); n != 0 {
		t.Fatalf("%d Control calls", n)
	}
	if n := f.firings(RuleEscalate, skippedResult); n != 1 {
		t.Fatalf("skipped %v", n)
	}
}

// The runner reads the due jobs in batches and runs a batch's worth at
// once, each job once at a time.
func TestRunnerRunsManyJobs(t *testing.T) {
	f := newFixture(t, escalateRules)
	const n = dueBatch + 10
	for i := range n {
		f.putJob(store.Job{ThreadKey: store.ThreadKey{Page: pageID, PSID: fmt.Sprintf("71%014d", i)}, Rule: RuleEscalate, At: start, Created: start, Target: "billing-bot"})
	}
	f.run()
	f.waitFor("every job run", func() bool { return f.firings(RuleEscalate, firedResult) == n })
	f.waitFor("every job deleted", func() bool {
		var left []store.Job
		_ = f.db.View(func(tx store.ReadTx) error {
			var err error
			left, err = tx.Jobs(RuleEscalate)
			return err
		})
		return len(left) == 0
	})
	if got := len(f.controlCalls()); got != n {
		t.Fatalf("%d Control calls for %d jobs", got, n)
	}
}

// A job whose update keeps failing runs again, but not in a loop: each
// run may speak to the person (the closed message) or call Meta.
func TestRunnerBacksOffWhenJobUpdatesKeepFailing(t *testing.T) {
	f := newFixture(t, escalateRules+hoursClosed)
	f.setOwner(supportID)
	f.putJob(store.Job{ThreadKey: thread, Rule: RuleHours, At: start, Created: start, Reason: "held"})
	f.faulty.FailUpdates(-1, nil)
	f.run()
	f.waitFor("the first run's update", func() bool { return f.db.updates() >= 2 })
	time.Sleep(100 * time.Millisecond) // nothing announces that the runner is idle
	if got := f.sentTexts(); len(got) > 1 {
		t.Fatalf("the closed message was sent %d times with the clock standing still", len(got))
	}
}
