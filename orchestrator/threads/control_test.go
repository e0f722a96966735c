package threads_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

func pass(to string) threads.Request {
	return threads.Request{Page: page, PSID: psid, App: "support-bot", Op: statemachine.OpPass, Target: to, Metadata: "m", Cause: store.CauseCall, By: "support-bot"}
}

func TestControlAppliesWhatMetaAccepted(t *testing.T) {
	f := newFixture(t)
	th, err := f.svc.Control(context.Background(), pass("billing-bot"))
	if err != nil {
		t.Fatal(err)
	}
	if th.Owner != billingID || th.State != statemachine.Secondary {
		t.Fatalf("returned %+v", th.Thread)
	}
	got, hist, intents := f.thread(key(page))
	if got.Owner != billingID || len(hist) != 1 || hist[0].Cause != store.CauseCall || hist[0].By != "support-bot" || hist[0].To != billingID {
		t.Fatalf("record %+v, history %+v", got.Thread, hist)
	}
	if len(intents) != 0 {
		t.Fatalf("intent left: %+v", intents)
	}
	if calls := f.graph.Calls(); len(calls) != 1 || calls[0] != "pass "+psid+" "+billingID+" PT_SUPPORT" {
		t.Fatalf("calls %q", calls)
	}
	if n := testutil.ToFloat64(f.metrics.GraphCalls.WithLabelValues("pass", "ok")); n != 1 {
		t.Fatalf("graph calls ok = %v", n)
	}
	if len(f.seen) != 1 || f.seen[0].Owner != billingID {
		t.Fatalf("transition hook saw %+v", f.seen)
	}
	select {
	case <-f.woken:
	default:
		t.Fatal("the timers were not woken after the commit")
	}
}

func TestControlRefusesWhatMetaWouldRefuse(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID)
	// Meta agrees with the record when asked.
	f.graph.owner = func(string) (messenger.ThreadOwner, error) { return messenger.ThreadOwner{AppID: billingID}, nil }
	for _, c := range []struct {
		name string
		req  threads.Request
		want error
		code apierr.Code
	}{
		{"release by a non-owner", threads.Request{Page: page, PSID: psid, App: "support-bot", Op: statemachine.OpRelease}, statemachine.ErrNotOwner, apierr.Refused},
		{"take without the permission", threads.Request{Page: page, PSID: psid, App: "billing-bot", Op: statemachine.OpTake}, statemachine.ErrTakeNotPermitted, apierr.Refused},
		{"request under Conversation Routing", threads.Request{Page: page, PSID: psid, App: "billing-bot", Op: statemachine.OpRequest}, statemachine.ErrNotInMode, apierr.Refused},
		{"extend too long", threads.Request{Page: page, PSID: psid, App: "billing-bot", Op: statemachine.OpExtend, Duration: 8 * 24 * time.Hour}, statemachine.ErrDuration, apierr.Refused},
		{"unknown page", threads.Request{Page: "1", PSID: psid, App: "support-bot", Op: statemachine.OpPass}, nil, apierr.NotFound},
		{"external app acting", threads.Request{Page: page, PSID: psid, App: "page-inbox", Op: statemachine.OpPass}, nil, apierr.Invalid},
		{"no page token", threads.Request{Page: legacyPage, PSID: psid, App: "billing-bot", Op: statemachine.OpPass}, nil, apierr.Invalid},
		{"unknown target", pass("nobody"), nil, apierr.Invalid},
		{"target not on the page", threads.Request{Page: legacyPage, PSID: psid, App: "support-bot", Op: statemachine.OpPass, Target: "billing-bot"}, nil, apierr.Invalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.svc.Control(context.Background(), c.req)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) || apierr.CodeOf(err) != c.code {
				t.Fatalf("err %v (code %s), want %v (%s)", err, apierr.CodeOf(err), c.want, c.code)
			}
		})
	}
	// Refusals that rest on the record asked thread_owner first; none
	// reached the thread-control edges.
	for _, c := range f.graph.Calls() {
		if !strings.HasPrefix(c, "thread_owner ") {
			t.Fatalf("Meta was called: %q", f.graph.Calls())
		}
	}
	if n := len(f.graph.Calls()); n != 1 {
		t.Fatalf("thread_owner asked %d times, want once (for the release; the rest do not rest on the owner)", n)
	}
	if _, _, intents := f.thread(key(page)); len(intents) != 0 {
		t.Fatalf("intents %+v", intents)
	}
}

// A refusal Baton would make from its own record is checked with Meta
// first: when Meta says otherwise, the call goes through, once.
func TestControlAsksMetaBeforeRefusing(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID) // Baton's record: billing owns it
	// Meta: control lapsed and support (the default app) has it again
	// after the person wrote; Baton saw no webhook for that.
	f.graph.owner = func(string) (messenger.ThreadOwner, error) { return messenger.ThreadOwner{AppID: supportID}, nil }
	th, err := f.svc.Control(context.Background(), pass("billing-bot"))
	if err != nil {
		t.Fatal(err)
	}
	if th.Owner != billingID {
		t.Fatalf("owner %s", th.Owner)
	}
	calls := f.graph.Calls()
	if len(calls) != 2 || !strings.HasPrefix(calls[0], "thread_owner") || !strings.HasPrefix(calls[1], "pass ") {
		t.Fatalf("calls %q, want thread_owner then the pass", calls)
	}
	// Meta cannot be asked: the call goes to Meta, whose answer decides.
	f2 := newFixture(t)
	f2.put(key(page), billingID)
	if _, err := f2.svc.Control(context.Background(), pass("billing-bot")); err != nil {
		t.Fatal(err)
	}
	if th, _, _ := f2.thread(key(page)); th.Owner != billingID {
		t.Fatalf("owner %s after Meta accepted", th.Owner)
	}
}

// Meta says the caller is not the owner: Baton asks thread_owner and
// records Meta's answer.
func TestControlReconcilesWhenMetaSaysNotOwner(t *testing.T) {
	f := newFixture(t)
	f.graph.control = func(string, string, string) error { return notOwner() }
	f.graph.owner = func(string) (messenger.ThreadOwner, error) {
		return messenger.ThreadOwner{AppID: inboxID, Expires: f.clock.Now().Add(3 * time.Hour)}, nil
	}
	_, err := f.svc.Control(context.Background(), pass("billing-bot"))
	var ge *messenger.Error
	if !errors.As(err, &ge) || ge.Code != 100 || apierr.CodeOf(err) != apierr.GraphAPI {
		t.Fatalf("err %v", err)
	}
	th, hist, intents := f.thread(key(page))
	if th.Owner != inboxID || !th.ExpiresAt.Equal(f.clock.Now().Add(3*time.Hour)) {
		t.Fatalf("record %+v", th.Thread)
	}
	if len(hist) != 1 || hist[0].Cause != store.CauseReconcile || hist[0].Event != "thread_owner" {
		t.Fatalf("history %+v", hist)
	}
	if len(intents) != 0 {
		t.Fatalf("intents %+v", intents)
	}
	if calls := f.graph.Calls(); len(calls) != 2 || !strings.HasPrefix(calls[1], "thread_owner "+psid+"  PT_SUPPORT") {
		t.Fatalf("calls %q (thread_owner must be asked as the default app)", calls)
	}
	if es := f.errorsOf("graph"); len(es) != 1 || es[0].App != "support-bot" {
		t.Fatalf("recent errors %+v", es)
	}
}

// The call's outcome is unknown (no answer read): the reconcile finds
// that Meta applied it.
func TestControlReconcilesAnUncertainOutcome(t *testing.T) {
	f := newFixture(t)
	f.graph.control = func(string, string, string) error { return lost() }
	f.graph.owner = func(string) (messenger.ThreadOwner, error) { return messenger.ThreadOwner{AppID: billingID}, nil }
	if _, err := f.svc.Control(context.Background(), pass("billing-bot")); !messenger.IsUncertain(err) {
		t.Fatalf("err %v", err)
	}
	th, hist, _ := f.thread(key(page))
	if th.Owner != billingID || len(hist) != 1 || hist[0].Cause != store.CauseReconcile {
		t.Fatalf("record %+v history %+v", th.Thread, hist)
	}
	if n := testutil.ToFloat64(f.metrics.GraphCalls.WithLabelValues("pass", "transport_error")); n != 1 {
		t.Fatalf("transport errors counted %v", n)
	}
}

// A failure that says nothing about ownership is not reconciled.
func TestControlDoesNotReconcileOtherFailures(t *testing.T) {
	f := newFixture(t)
	f.graph.control = func(string, string, string) error {
		return &messenger.Error{HTTPStatus: 400, Code: messenger.CodeBadToken, Message: "Invalid OAuth access token."}
	}
	if _, err := f.svc.Control(context.Background(), pass("billing-bot")); !messenger.IsBadToken(err) {
		t.Fatalf("err %v", err)
	}
	if calls := f.graph.Calls(); len(calls) != 1 {
		t.Fatalf("calls %q", calls)
	}
	if th, _, intents := f.thread(key(page)); th.Owner != "" || len(intents) != 0 {
		t.Fatalf("record %+v intents %+v", th.Thread, intents)
	}
}

// The reconcile after a lost answer fails too: the caller gets the call's
// error and the record is left as it was.
func TestControlWhenTheReconcileFailsToo(t *testing.T) {
	f := newFixture(t)
	f.graph.control = func(string, string, string) error { return lost() }
	f.graph.owner = func(string) (messenger.ThreadOwner, error) {
		return messenger.ThreadOwner{}, &messenger.Error{HTTPStatus: 500, Code: 2, IsTransient: true, Message: "An unexpected error has occurred."}
	}
	if _, err := f.svc.Control(context.Background(), pass("billing-bot")); !messenger.IsUncertain(err) {
		t.Fatalf("err %v", err)
	}
	if th, hist, _ := f.thread(key(page)); th.Owner != "" || len(hist) != 0 {
		t.Fatalf("record %+v history %+v", th.Thread, hist)
	}
}

// A webhook moves the record while the call is in flight: Meta's answer to
// the call is what stands.
func TestControlWhenTheRecordMovedOnDuringTheCall(t *testing.T) {
	f := newFixture(t)
	f.graph.control = func(string, string, string) error {
		// The Page Inbox took the thread meanwhile, as a webhook said.
		f.put(key(page), inboxID)
		return nil
	}
	th, err := f.svc.Control(context.Background(), pass("billing-bot"))
	if err != nil {
		t.Fatal(err)
	}
	if th.Owner != billingID {
		t.Fatalf("owner %s, want billing-bot (Meta applied the pass)", th.Owner)
	}
	got, hist, intents := f.thread(key(page))
	if got.Owner != billingID || len(hist) != 1 || hist[0].From != inboxID || hist[0].To != billingID || hist[0].Cause != store.CauseCall {
		t.Fatalf("record %+v history %+v", got.Thread, hist)
	}
	if len(intents) != 0 {
		t.Fatalf("intents %+v", intents)
	}
}

// A take and a release whose record moved on meanwhile: the observed
// owner is the taker, or idle.
func TestControlMovedOnTakeAndRelease(t *testing.T) {
	for _, c := range []struct {
		name  string
		req   threads.Request
		start string
		want  string
	}{
		{"take", threads.Request{Page: page, PSID: psid, App: "support-bot", Op: statemachine.OpTake}, billingID, supportID},
		{"release", threads.Request{Page: page, PSID: psid, App: "billing-bot", Op: statemachine.OpRelease}, billingID, ""},
		{"pass to the default app", threads.Request{Page: page, PSID: psid, App: "billing-bot", Op: statemachine.OpPass}, billingID, supportID},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.put(key(page), c.start)
			f.graph.control = func(string, string, string) error {
				f.put(key(page), inboxID) // the record moved to the inbox meanwhile
				return nil
			}
			if _, err := f.svc.Control(context.Background(), c.req); err != nil {
				t.Fatal(err)
			}
			if th, _, _ := f.thread(key(page)); th.Owner != c.want {
				t.Fatalf("owner %q, want %q", th.Owner, c.want)
			}
		})
	}
}

// The intent cannot be written: nothing is asked of Meta.
func TestControlWhenTheIntentCannotBeStored(t *testing.T) {
	f := newFixture(t)
	f.store.FailUpdates(1, nil)
	_, err := f.svc.Control(context.Background(), pass("billing-bot"))
	if err == nil || !strings.Contains(err.Error(), "record intent") || apierr.CodeOf(err) != apierr.Internal {
		t.Fatalf("err %v", err)
	}
	if calls := f.graph.Calls(); len(calls) != 0 {
		t.Fatalf("Meta was called: %q", calls)
	}
}

// Meta applied the call but the result cannot be stored: the intent stays
// for the next start's reconcile.
func TestControlWhenTheResultCannotBeStored(t *testing.T) {
	f := newFixture(t)
	f.graph.control = func(string, string, string) error {
		f.store.FailUpdates(1, nil)
		return nil
	}
	if _, err := f.svc.Control(context.Background(), pass("billing-bot")); err == nil {
		t.Fatal("no error")
	}
	if _, _, intents := f.thread(key(page)); len(intents) != 1 || intents[0].Op != "pass" || intents[0].Target != billingID {
		t.Fatalf("intents %+v", intents)
	}
}

func TestControlExtend(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID)
	req := threads.Request{Page: page, PSID: psid, App: "billing-bot", Op: statemachine.OpExtend, Duration: 72 * time.Hour}
	th, err := f.svc.Control(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !th.ExpiresAt.Equal(f.clock.Now().Add(72 * time.Hour)) {
		t.Fatalf("expires %v", th.ExpiresAt)
	}
}

// Calls on one thread run one at a time: the second waits for the first.
func TestControlSerialisesOneThread(t *testing.T) {
	f := newFixture(t)
	entered, release := make(chan struct{}), make(chan struct{})
	f.graph.control = func(op, _, _ string) error {
		if op == "pass" {
			close(entered)
			<-release
		}
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.Control(context.Background(), pass("billing-bot"))
		done <- err
	}()
	<-entered
	second := make(chan error, 1)
	go func() {
		_, err := f.svc.Control(context.Background(), threads.Request{Page: page, PSID: psid, App: "billing-bot", Op: statemachine.OpRelease})
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("the release ran while the pass was in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The release was decided on the pass's result: billing owns it.
	if err := <-second; err != nil {
		t.Fatalf("release after the pass: %v", err)
	}
	if th, _, _ := f.thread(key(page)); th.Owner != "" {
		t.Fatalf("owner %s", th.Owner)
	}
}

func TestCurrentShowsLapsedControl(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID)
	p := f.top.Page(page)
	th, err := f.svc.Current(p, key(page))
	if err != nil || th.Owner != billingID {
		t.Fatalf("%+v %v", th.Thread, err)
	}
	f.clock.Advance(25 * time.Hour)
	if th, _ = f.svc.Current(p, key(page)); th.Owner != "" || th.State != statemachine.Idle {
		t.Fatalf("after 25 h: %+v", th.Thread)
	}
	// A legacy page's new thread starts with the primary.
	if th, _ = f.svc.Current(f.top.Page(legacyPage), key(legacyPage)); th.Owner != supportID {
		t.Fatalf("legacy: %+v", th.Thread)
	}
}
