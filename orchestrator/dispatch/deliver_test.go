package dispatch_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/storetest"
)

func TestDelivered(t *testing.T) {
	f := newFixture(t, setup{})
	acts := []adapters.Action{{Type: "pass", To: billing, Metadata: "billing question"}}
	f.answer(support, func(int, *adapters.Delivery) (adapters.Result, error) {
		return adapters.Result{Status: 200, Actions: acts}, nil
	})
	f.start()
	idle := event(support, psid2, 2)
	idle.State, idle.Owner = "", ""
	dels := f.add(event(support, psid, 1), idle)

	want := map[string]adapters.Delivery{
		dlv(dels[0]): {ID: dlv(dels[0]), App: support, PageID: pageID, PSID: psid, Channel: "messaging", Kind: "message", Attempt: 1,
			Thread: adapters.Thread{State: "primary", Owner: support, OwnerAppID: supportID}, Event: dels[0].Event},
		dlv(dels[1]): {ID: dlv(dels[1]), App: support, PageID: pageID, PSID: psid2, Channel: "messaging", Kind: "message", Attempt: 1,
			Thread: adapters.Thread{State: "idle"}, Event: dels[1].Event},
	}
	for range dels {
		got := f.next()
		if w := want[got.ID]; !reflect.DeepEqual(*got, w) {
			t.Errorf("envelope:\n got %+v\nwant %+v", *got, w)
		}
	}
	for range dels {
		c := f.nextActions()
		if c.del.App != support || !reflect.DeepEqual(c.acts, acts) {
			t.Errorf("Actions hook got delivery %d of %s, actions %+v; want the bot's %+v", c.del.ID, c.del.App, c.acts, acts)
		}
	}
	if n := f.count(support, "delivered"); n != 2 {
		t.Errorf("delivered counter = %d, want 2", n)
	}
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 && f.ds.Pending() == 0 })
	if n := f.count(support, "retry") + f.count(support, "dead"); n != 0 {
		t.Errorf("retry+dead counters = %d, want 0", n)
	}
}

func TestLaneFIFO(t *testing.T) {
	f := newFixture(t, setup{})
	f.start()
	a := f.enqueue(event(support, psid, 1), event(support, psid, 2), event(support, psid, 3))
	b := f.enqueue(event(support, psid2, 4))
	f.answer(support, func(_ int, d *adapters.Delivery) (adapters.Result, error) {
		if d.ID == dlv(a[0]) && d.Attempt == 1 {
			return adapters.Result{}, &adapters.Error{Status: 503, Retry: true, Err: errors.New("busy")}
		}
		return adapters.Result{Status: 200}, nil
	})
	f.ds.Add(a)
	f.ds.Add(b)

	type call struct {
		id      string
		attempt int
	}
	var laneA []call
	// Lane A's head fails and waits on a clock nobody moves: lane B must
	// still deliver.
	for gotB := false; !gotB; {
		d := f.next()
		if d.PSID == psid2 {
			gotB = d.ID == dlv(b[0])
			continue
		}
		laneA = append(laneA, call{d.ID, d.Attempt})
	}
	f.reach()
	for len(laneA) < 4 {
		d := f.next()
		if d.PSID != psid {
			t.Fatalf("unexpected delivery %s on %s", d.ID, d.PSID)
		}
		laneA = append(laneA, call{d.ID, d.Attempt})
	}
	want := []call{{dlv(a[0]), 1}, {dlv(a[0]), 2}, {dlv(a[1]), 1}, {dlv(a[2]), 1}}
	if !slices.Equal(laneA, want) {
		t.Errorf("lane A got %v, want %v", laneA, want)
	}
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
}

// inflight tracks how many deliveries of each bot are in its double at
// once; each call waits for a release.
type inflight struct {
	mu      sync.Mutex
	now     map[string]int
	max     map[string]int
	entered chan *adapters.Delivery
	release map[string]chan struct{}
}

func (in *inflight) deliver(app string) func(ctx context.Context, d *adapters.Delivery) (adapters.Result, error) {
	return func(ctx context.Context, d *adapters.Delivery) (adapters.Result, error) {
		in.mu.Lock()
		in.now[app]++
		in.max[app] = max(in.max[app], in.now[app])
		in.mu.Unlock()
		defer func() {
			in.mu.Lock()
			in.now[app]--
			in.mu.Unlock()
		}()
		in.entered <- d
		select {
		case <-in.release[app]:
			return adapters.Result{Status: 200}, nil
		case <-ctx.Done():
			return adapters.Result{}, ctx.Err()
		}
	}
}

func (in *inflight) count(app string) (now, peak int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.now[app], in.max[app]
}

func TestConcurrencyPerBot(t *testing.T) {
	f := newFixture(t, setup{concurrency: 1})
	in := &inflight{now: map[string]int{}, max: map[string]int{}, entered: make(chan *adapters.Delivery, 100),
		release: map[string]chan struct{}{support: make(chan struct{}), billing: make(chan struct{})}}
	f.bots[support].DeliverFunc = in.deliver(support)
	f.bots[billing].DeliverFunc = in.deliver(billing)
	f.start()
	var sup []store.Delivery
	for _, p := range []string{psid, psid2, psid3} {
		sup = append(sup, f.add(event(support, p, 1), event(support, p, 2))...)
	}
	f.add(event(billing, psid, 3), event(billing, psid2, 4))

	entered := func() *adapters.Delivery {
		t.Helper()
		select {
		case d := <-in.entered:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery entered a bot in 10s")
			return nil
		}
	}
	// The billing bot (concurrency 16) has both its lanes in flight at
	// once, while one support delivery is held: the double sees overlap,
	// and one bot's limit does not hold up another bot.
	var supFirst *adapters.Delivery
	for billingIn := 0; billingIn < 2; {
		d := entered()
		if d.App == billing {
			billingIn++
			continue
		}
		if supFirst != nil {
			t.Fatalf("support deliveries %s and %s in flight at once with concurrency 1", supFirst.ID, d.ID)
		}
		supFirst = d
	}
	if _, peak := in.count(billing); peak != 2 {
		t.Errorf("billing bot peak in flight = %d, want 2", peak)
	}
	in.release[billing] <- struct{}{}
	in.release[billing] <- struct{}{}

	got := map[string][]string{} // by psid
	for i := range sup {
		d := supFirst
		if i > 0 || d == nil {
			d = entered()
		}
		if d.App != support {
			t.Fatalf("unexpected delivery %s of %s", d.ID, d.App)
		}
		if now, _ := in.count(support); now != 1 {
			t.Fatalf("%d support deliveries in flight, want 1", now)
		}
		got[d.PSID] = append(got[d.PSID], d.ID)
		in.release[support] <- struct{}{}
	}
	if _, peak := in.count(support); peak != 1 {
		t.Errorf("support bot peak in flight = %d, want 1", peak)
	}
	for i, p := range []string{psid, psid2, psid3} {
		if want := []string{dlv(sup[2*i]), dlv(sup[2*i+1])}; !slices.Equal(got[p], want) {
			t.Errorf("lane %s got %v, want %v", p, got[p], want)
		}
	}
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
}

func TestLoad(t *testing.T) {
	f := newFixture(t, setup{})
	failing := event(support, psid2, 2)
	failing.Attempts, failing.LastError = 2, "bot answered 503: busy"
	failing.CreatedAt, failing.NextAttempt = start.Add(-5*time.Minute), start.Add(-time.Second)
	dels := f.enqueue(
		event(support, psid, 1),
		failing,
		event("retired-bot", psid, 3), // no longer in the config
		event("page-inbox", psid, 4),  // not hosted: Baton cannot deliver
	)
	f.build()
	if err := f.ds.Load(); err != nil {
		t.Fatal(err)
	}
	if n := f.ds.Pending(); n != 2 {
		t.Errorf("Pending after Load = %d, want 2 (the hosted bot's)", n)
	}
	if since, ok := f.health.FailingSince(support); !ok || !since.Equal(failing.CreatedAt) {
		t.Errorf("FailingSince = %v, %v; want %v (the failing delivery's creation)", since, ok, failing.CreatedAt)
	}
	f.run()

	got := map[string]int{}
	for range 2 {
		d := f.next()
		got[d.ID] = d.Attempt
	}
	if want := map[string]int{dlv(dels[0]): 1, dlv(dels[1]): 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("attempts by id = %v, want %v", got, want)
	}
	f.nextActions()
	f.nextActions() // both attempts are over: OnRecovered, if at all, ran before
	close(f.recovered)
	var recovered []string
	for app := range f.recovered {
		recovered = append(recovered, app)
	}
	if !slices.Equal(recovered, []string{support}) {
		t.Errorf("OnRecovered called for %v, want once for %s", recovered, support)
	}
	eventually(t, "only the undeliverable left", func() bool {
		return slices.Equal(f.outbox(), []uint64{dels[2].ID, dels[3].ID})
	})
	if _, ok := f.health.FailingSince(support); ok {
		t.Error("support bot still failing after delivering")
	}
	if !f.health.Recovered(support, start) {
		t.Error("Recovered(support, start) = false after a delivery at start")
	}
}

func TestLoadFails(t *testing.T) {
	f := newFixture(t, setup{})
	f.build()
	f.store.FailViews(1, nil)
	if err := f.ds.Load(); !errors.Is(err, storetest.ErrInjected) {
		t.Fatalf("Load = %v, want the store's error", err)
	}
}

// TestLoadAfterAdd: the server serves webhooks before it runs the
// orchestrator (orchestrator/server.go), so ingress may Add a delivery
// that Load then finds in the outbox again: it must go out once.
func TestLoadAfterAdd(t *testing.T) {
	f := newFixture(t, setup{})
	f.build()
	first := f.add(event(support, psid, 1))[0]
	if err := f.ds.Load(); err != nil {
		t.Fatal(err)
	}
	if n := f.ds.Pending(); n != 1 {
		t.Errorf("Pending = %d, want 1", n)
	}
	f.run()
	second := f.add(event(support, psid, 2))[0]
	if d := f.next(); d.ID != dlv(first) {
		t.Fatalf("first attempt %s, want %s", d.ID, dlv(first))
	}
	if d := f.next(); d.ID != dlv(second) || d.Attempt != 1 {
		t.Fatalf("second attempt %s (attempt %d), want %s: the first was queued twice", d.ID, d.Attempt, dlv(second))
	}
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
	f.noAttempt()
}

func TestShutdownLeavesPending(t *testing.T) {
	f := newFixture(t, setup{concurrency: 1})
	inFlight := make(chan struct{})
	f.bots[support].DeliverFunc = func(ctx context.Context, d *adapters.Delivery) (adapters.Result, error) {
		inFlight <- struct{}{}
		<-ctx.Done()
		return adapters.Result{}, ctx.Err()
	}
	later := event(billing, psid3, 3)
	later.NextAttempt = start.Add(time.Hour)
	dels := f.enqueue(
		event(support, psid, 1),  // in flight when Run ends
		event(support, psid2, 2), // waits for the bot's one slot
		later,                    // waits for its time
	)
	f.start()
	select {
	case <-inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery in flight in 10s")
	}
	if at := f.waitAt(); !at.Equal(later.NextAttempt) {
		t.Errorf("lane waits until %v, want %v", at, later.NextAttempt)
	}
	f.stop()

	if got, want := f.outbox(), []uint64{dels[0].ID, dels[1].ID, dels[2].ID}; !slices.Equal(got, want) {
		t.Errorf("outbox after shutdown = %v, want %v", got, want)
	}
	for _, d := range dels {
		if s := f.stored(d.ID); s.Attempts != 0 || s.Status != store.DeliveryPending || s.LastError != "" {
			t.Errorf("delivery %d after shutdown: attempts %d, status %s, error %q; want untouched", d.ID, s.Attempts, s.Status, s.LastError)
		}
	}
	if n := len(f.dead()); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
	if n := f.count(support, "retry") + f.count(support, "dead"); n != 0 {
		t.Errorf("retry+dead counters = %d, want 0", n)
	}
	if _, failing := f.health.FailingSince(support); failing {
		t.Error("a cancelled attempt marked the bot failing")
	}
	// After Run, an added delivery is counted but not attempted.
	f.add(event(support, psid3, 4))
	if n := f.ds.Pending(); n != 4 {
		t.Errorf("Pending = %d, want 4", n)
	}
	f.noAttempt()
}
