package threads_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// runReconciles runs the reconcile workers until the test ends.
func (f *fixture) runReconciles() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.RunReconciles(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Error(err)
		}
	})
}

// A call cut short by a crash left its intent: the start-up queues a
// reconcile without waiting for Meta; the intent goes once Meta answered,
// and stays (asked again with backoff) while it does not.
func TestRecoverIntentsAtStart(t *testing.T) {
	f := newFixture(t)
	other := store.ThreadKey{Page: page, PSID: "7999999999999999"}
	for _, k := range []store.ThreadKey{key(page), other} {
		in := store.Intent{ThreadKey: k, App: supportID, Op: "pass", Target: billingID, At: f.clock.Now()}
		if err := f.store.Update(context.Background(), func(tx store.Tx) error { return tx.PutIntent(in) }); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	down := true
	f.graph.owner = func(p string) (messenger.ThreadOwner, error) {
		mu.Lock()
		defer mu.Unlock()
		if p == other.PSID && down {
			return messenger.ThreadOwner{}, lost()
		}
		return messenger.ThreadOwner{AppID: billingID}, nil
	}
	if err := f.svc.RecoverIntents(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.runReconciles()
	f.eventually("the first thread reconciled", func() bool { th, _, _ := f.thread(key(page)); return th.Owner == billingID })
	_, hist, _ := f.thread(key(page))
	if len(hist) != 1 || hist[0].Cause != store.CauseReconcile || !strings.Contains(hist[0].Metadata, "cut short by a restart") {
		t.Fatalf("history %+v", hist)
	}
	f.eventually("the failure shown", func() bool { return len(f.errorsOf("reconcile")) == 1 })
	if es := f.errorsOf("reconcile"); es[0].PSID != other.PSID {
		t.Fatalf("recent errors %+v", es)
	}
	f.eventually("the first intent cleared", func() bool { _, _, in := f.thread(key(page)); return len(in) == 1 })
	if _, _, in := f.thread(other); len(in) != 1 || in[0].PSID != other.PSID {
		t.Fatalf("the unsettled intent: %+v", in)
	}
	// Meta answers again: the retry, after its backoff, settles it.
	mu.Lock()
	down = false
	mu.Unlock()
	f.clock.Advance(2 * time.Second)
	f.eventually("the second intent cleared", func() bool { _, _, in := f.thread(other); return len(in) == 0 })
	if th, _, _ := f.thread(other); th.Owner != billingID {
		t.Fatalf("record %+v", th.Thread)
	}
}

// A call whose answer was lost, and Meta unreachable for the reconcile:
// the intent stays and the reconcile is retried until Meta answers.
func TestUncertainCallKeepsItsIntentUntilReconciled(t *testing.T) {
	f := newFixture(t)
	f.runReconciles()
	var mu sync.Mutex
	down := true
	f.graph.control = func(string, string, string) error { return lost() }
	f.graph.owner = func(string) (messenger.ThreadOwner, error) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return messenger.ThreadOwner{}, lost()
		}
		return messenger.ThreadOwner{AppID: billingID}, nil
	}
	if _, err := f.svc.Control(context.Background(), pass("billing-bot")); !messenger.IsUncertain(err) {
		t.Fatalf("err %v", err)
	}
	if _, _, in := f.thread(key(page)); len(in) != 1 {
		t.Fatalf("intents %+v", in)
	}
	f.clock.Advance(time.Second) // the first retry: Meta still down
	f.eventually("the first retry", func() bool {
		for _, c := range f.graph.Calls() {
			if strings.HasPrefix(c, "thread_owner") {
				return strings.Count(strings.Join(f.graph.Calls(), "|"), "thread_owner") >= 2
			}
		}
		return false
	})
	if _, _, in := f.thread(key(page)); len(in) != 1 {
		t.Fatalf("intent dropped while Meta is down: %+v", in)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	f.clock.Advance(5 * time.Second)
	f.eventually("the intent settled", func() bool { _, _, in := f.thread(key(page)); return len(in) == 0 })
	if th, _, _ := f.thread(key(page)); th.Owner != billingID {
		t.Fatalf("record %+v", th.Thread)
	}
}

func TestRecoverIntentsWhenTheStoreFails(t *testing.T) {
	f := newFixture(t)
	f.store.FailViews(1, nil)
	if err := f.svc.RecoverIntents(context.Background()); err == nil {
		t.Fatal("no error from a store that cannot be read")
	}
}

func TestReconcileAnswers(t *testing.T) {
	for _, c := range []struct {
		name    string
		start   string
		answer  messenger.ThreadOwner
		err     error
		want    string
		history int
		fails   string
	}{
		{name: "Meta agrees", start: billingID, answer: messenger.ThreadOwner{AppID: billingID}, want: billingID},
		{name: "another owner", start: billingID, answer: messenger.ThreadOwner{AppID: inboxID}, want: inboxID, history: 1},
		{name: "idle", start: billingID, answer: messenger.ThreadOwner{Idle: true}, want: "", history: 1},
		// Meta shows support (the asker) only an expiration: another app
		// owns it. A record naming another app stands; one naming the
		// asker, or nobody, is disproved.
		{name: "owner hidden, record names another app", start: billingID, answer: messenger.ThreadOwner{Expires: time.Unix(2e9, 0)}, want: billingID},
		{name: "owner hidden, record says idle", start: "", answer: messenger.ThreadOwner{Expires: time.Unix(2e9, 0)}, want: threads.OwnerUnknown, history: 1},
		{name: "owner hidden, record names the asker", start: supportID, answer: messenger.ThreadOwner{Expires: time.Unix(2e9, 0)}, want: threads.OwnerUnknown, history: 1},
		{name: "Meta fails", start: billingID, err: lost(), want: billingID, fails: "thread_owner"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.put(key(page), c.start)
			f.graph.owner = func(string) (messenger.ThreadOwner, error) { return c.answer, c.err }
			err := f.svc.Reconcile(context.Background(), key(page), "test")
			if (c.fails == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.fails)) {
				t.Fatalf("err %v, want %q", err, c.fails)
			}
			th, hist, _ := f.thread(key(page))
			if th.Owner != c.want || len(hist) != c.history {
				t.Fatalf("record %+v history %+v", th.Thread, hist)
			}
		})
	}
}

func TestReconcileUnknownPage(t *testing.T) {
	f := newFixture(t)
	if err := f.svc.Reconcile(context.Background(), store.ThreadKey{Page: "1", PSID: psid}, "test"); err == nil {
		t.Fatal("no error")
	}
}

// Reconciles asked for in the background run on the workers, at most one
// per thread at a time, and stop with their context.
func TestReconcileLaterRunsOncePerThread(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID)
	entered, release := make(chan string, 10), make(chan struct{})
	var mu sync.Mutex
	asked := map[string]int{}
	f.graph.owner = func(p string) (messenger.ThreadOwner, error) {
		mu.Lock()
		asked[p]++
		mu.Unlock()
		entered <- p
		<-release
		return messenger.ThreadOwner{AppID: inboxID}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.RunReconciles(ctx) }()
	f.svc.ReconcileLater(key(page), "first")
	<-entered
	f.svc.ReconcileLater(key(page), "second, while the first is in flight")
	close(release)
	f.eventually("the reconcile recorded", func() bool { th, _, _ := f.thread(key(page)); return th.Owner == inboxID })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if asked[psid] != 1 {
		t.Fatalf("thread_owner asked %d times", asked[psid])
	}
}

func TestReconcileLaterRecordsFailures(t *testing.T) {
	f := newFixture(t)
	f.graph.owner = func(string) (messenger.ThreadOwner, error) { return messenger.ThreadOwner{}, errors.New("boom") }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.RunReconciles(ctx) }()
	f.svc.ReconcileLater(key(page), "test")
	f.eventually("the failure recorded", func() bool { return len(f.errorsOf("reconcile")) == 1 })
	cancel()
	<-done
}

func TestRunActions(t *testing.T) {
	f := newFixture(t)
	f.graph.owner = func(string) (messenger.ThreadOwner, error) { return messenger.ThreadOwner{AppID: billingID}, nil }
	del := &store.Delivery{App: "support-bot", Page: page, PSID: psid}
	f.svc.RunActions(context.Background(), del, []adapters.Action{
		{Type: "pass", To: "billing-bot", Metadata: "from the bot"},
		{Type: "dance"},
		{Type: "extend", Duration: "forever"},
		{Type: "release"}, // support no longer owns it: refused
	})
	th, hist, _ := f.thread(key(page))
	if th.Owner != billingID || len(hist) != 1 || hist[0].Metadata != "from the bot" {
		t.Fatalf("record %+v history %+v", th.Thread, hist)
	}
	es := f.errorsOf("action")
	if len(es) != 3 {
		t.Fatalf("action errors %+v", es)
	}
	for i, want := range []string{"refused", "extend duration", "unknown action type"} { // newest first
		if !strings.Contains(es[i].Message, want) && !strings.Contains(es[i].Message, "does not control") {
			t.Fatalf("error %d: %q, want %q", i, es[i].Message, want)
		}
	}
	// Events without a person (app_roles) carry no thread to act on.
	f.svc.RunActions(context.Background(), &store.Delivery{App: "support-bot", Page: page}, []adapters.Action{{Type: "take"}})
	if n := len(f.graph.Calls()); n != 2 { // the pass, and thread_owner before the release was refused
		t.Fatalf("calls %q", f.graph.Calls())
	}
}

// Meta's expiration is taken within what Meta grants: a wild value does
// not become a timer centuries away.
func TestReconcileClampsExpiration(t *testing.T) {
	f := newFixture(t)
	f.put(key(page), billingID)
	f.graph.owner = func(string) (messenger.ThreadOwner, error) {
		return messenger.ThreadOwner{AppID: billingID, Expires: time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
	}
	if err := f.svc.Reconcile(context.Background(), key(page), "test"); err != nil {
		t.Fatal(err)
	}
	th, _, _ := f.thread(key(page))
	if limit := f.clock.Now().Add(31 * 24 * time.Hour); th.ExpiresAt.After(limit) {
		t.Fatalf("expires %v, past %v", th.ExpiresAt, limit)
	}
}

// A pass left unsettled by another process (it crashed, or the thread's
// shard moved to this replica) is settled before the next call decides:
// Meta applied it, so the record learns the new owner first, and the
// second pass of the same thread is refused here rather than made twice.
func TestControlSettlesALeftIntentFirst(t *testing.T) {
	f := newFixture(t)
	left := store.Intent{ThreadKey: key(page), App: supportID, Op: "pass", Target: billingID, At: f.clock.Now()}
	if err := f.store.Update(context.Background(), func(tx store.Tx) error { return tx.PutIntent(left) }); err != nil {
		t.Fatal(err)
	}
	f.graph.owner = func(string) (messenger.ThreadOwner, error) { return messenger.ThreadOwner{AppID: billingID}, nil }
	_, err := f.svc.Control(context.Background(), pass("billing-bot"))
	if !errors.Is(err, statemachine.ErrRefused) {
		t.Fatalf("the second pass: %v, want refused (the thread is billing-bot's already)", err)
	}
	if calls := f.graph.Calls(); len(calls) == 0 || !strings.HasPrefix(calls[0], "thread_owner ") || slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "pass ") }) {
		t.Fatalf("calls %q: want thread_owner first, and no second pass", calls)
	}
	th, hist, intents := f.thread(key(page))
	if th.Owner != billingID || len(intents) != 0 || len(hist) != 1 || hist[0].Cause != store.CauseReconcile {
		t.Fatalf("record %+v, history %+v, intents %+v", th.Thread, hist, intents)
	}
}
