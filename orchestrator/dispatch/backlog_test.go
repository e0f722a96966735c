package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/store"
)

// A dead letter retried while a later delivery of its thread waits for
// its own retry goes first, and says that it was dead and that a later
// one was delivered meanwhile; then the later one goes.
func TestRetriedDeadLetterGoesFirst(t *testing.T) {
	f := newFixture(t, setup{})
	f.start()
	dels := f.enqueue(event(support, psid, 1), event(support, psid, 2), event(support, psid, 3))
	f.answer(support, func(_ int, d *adapters.Delivery) (adapters.Result, error) {
		switch {
		case d.ID == dlv(dels[0]) && d.Retried == nil:
			return adapters.Result{}, &adapters.Error{Status: 400, Err: errors.New(`"bad"`)}
		case d.ID == dlv(dels[2]) && d.Attempt == 1:
			return adapters.Result{}, &adapters.Error{Status: 503, Retry: true, Err: errors.New(`"busy"`)}
		}
		return adapters.Result{Status: 200}, nil
	})
	f.ds.Add(dels)
	for _, want := range []store.Delivery{dels[0], dels[1], dels[2]} {
		if d := f.next(); d.ID != dlv(want) || d.Attempt != 1 {
			t.Fatalf("got %s attempt %d, want %s attempt 1", d.ID, d.Attempt, dlv(want))
		}
	}
	retryAt := f.waitAt() // the third waits for its second attempt
	eventually(t, "the second marked done", func() bool { return slices.Equal(f.outbox(), []uint64{dels[2].ID}) })
	dead := f.dead()
	if len(dead) != 1 || dead[0].ID != dels[0].ID || !dead[0].LaterDelivered {
		t.Fatalf("dead letters %+v, want the first, marked as passed by a later delivery", dead)
	}

	if _, err := f.ds.Retry(context.Background(), dels[0].ID); err != nil {
		t.Fatal(err)
	}
	d := f.next()
	if d.ID != dlv(dels[0]) || d.Retried == nil || !d.Retried.LaterDelivered || !d.Retried.DeadAt.Equal(dead[0].DeadAt) {
		t.Fatalf("after Retry: %s retried %+v; want %s first, retried, dead at %v, later delivered", d.ID, d.Retried, dlv(dels[0]), dead[0].DeadAt)
	}
	f.clock.Set(retryAt)
	if d := f.next(); d.ID != dlv(dels[2]) || d.Attempt != 2 || d.Retried != nil {
		t.Fatalf("then %s attempt %d retried %+v, want %s attempt 2, not retried", d.ID, d.Attempt, d.Retried, dlv(dels[2]))
	}
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
}

// With more lanes than fit in memory, the rest wait in the store and come
// in as lanes finish; a delivery that arrives meanwhile for a lane still
// in the store does not overtake the older ones of its thread.
func TestBacklogBeyondMaxLanes(t *testing.T) {
	f := newFixture(t, setup{maxLanes: 1})
	old := f.enqueue(event(support, psid, 1), event(support, psid2, 2), event(support, psid3, 3),
		event(support, psid, 4), event(support, psid2, 5))
	gate := make(chan struct{})
	in := &inflight{now: map[string]int{}, max: map[string]int{}, entered: make(chan *adapters.Delivery, 100)}
	f.bots[support].DeliverFunc = func(ctx context.Context, d *adapters.Delivery) (adapters.Result, error) {
		in.mu.Lock()
		in.now[support]++
		in.max[support] = max(in.max[support], in.now[support])
		in.mu.Unlock()
		defer func() { in.mu.Lock(); in.now[support]--; in.mu.Unlock() }()
		if d.ID == dlv(old[0]) {
			<-gate // new deliveries arrive while the backlog is being read
		}
		cp := *d
		f.attempts <- &cp
		return adapters.Result{Status: 200}, nil
	}
	f.start()
	late := f.add(event(support, psid2, 6), event(support, psid, 7))
	close(gate)
	got := map[string][]string{}
	for range len(old) + len(late) {
		d := f.next()
		got[d.PSID] = append(got[d.PSID], d.ID)
	}
	want := map[string][]string{
		psid:  {dlv(old[0]), dlv(old[3]), dlv(late[1])},
		psid2: {dlv(old[1]), dlv(old[4]), dlv(late[0])},
		psid3: {dlv(old[2])},
	}
	for p, w := range want {
		if !slices.Equal(got[p], w) {
			t.Errorf("thread %s got %v, want %v", p, got[p], w)
		}
	}
	if _, peak := in.count(support); peak != 1 {
		t.Errorf("%d deliveries in flight at once with one lane in memory, want 1", peak)
	}
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
	f.noAttempt()
}

// A bot that is down costs its concurrency in goroutines, not one per
// thread with deliveries waiting.
func TestWorkersPerBotNotPerLane(t *testing.T) {
	const lanes = 300
	f := newFixture(t, setup{concurrency: 4})
	f.answer(support, func(int, *adapters.Delivery) (adapters.Result, error) {
		return adapters.Result{}, &adapters.Error{Status: 503, Retry: true, Err: errors.New(`"down"`)}
	})
	base := runtime.NumGoroutine()
	var dels []store.Delivery
	for i := range lanes {
		dels = append(dels, event(support, fmt.Sprint(7000000000000000+i), i))
	}
	f.enqueue(dels...)
	f.start()
	for range lanes {
		f.next()
	}
	eventually(t, "every lane's failure stored", func() bool {
		return f.count(support, "retry") == lanes
	})
	// Workers (4 + the billing bot's 16), the timers, the scans, the done
	// marks and the store's commit: a few dozen whatever the backlog.
	if n := runtime.NumGoroutine() - base; n > 40 {
		t.Errorf("%d goroutines for %d waiting lanes", n, lanes)
	}
}

// Loading an outbox of large events holds none of them in memory.
func TestOutboxNotInMemory(t *testing.T) {
	const n = 4000
	f := newFixture(t, setup{})
	text := strings.Repeat("x", 4096)
	var dels []store.Delivery
	for i := range n {
		d := event(support, fmt.Sprint(7000000000000000+i), i)
		d.Event = json.RawMessage(fmt.Sprintf(`{"message":{"mid":"m_%d","text":%q}}`, i, text))
		dels = append(dels, d)
	}
	f.enqueue(dels...)
	dels = nil
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f.build()
	if err := f.ds.Load(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Errorf("the heap grew by %d KiB loading %d deliveries of 4 KiB (%d MiB of events)", grew>>10, n, n*4096>>20)
	}
	if p := f.ds.Pending(); p != n {
		t.Errorf("Pending = %d, want %d", p, n)
	}
	runtime.KeepAlive(f.ds)
}

// A lane waiting for its retry holds no worker: with one, other threads
// still deliver.
func TestWaitingLaneHoldsNoWorker(t *testing.T) {
	f := newFixture(t, setup{concurrency: 1})
	failing := f.enqueue(event(support, psid, 1))[0]
	f.answer(support, func(_ int, d *adapters.Delivery) (adapters.Result, error) {
		if d.ID == dlv(failing) && d.Attempt == 1 {
			return adapters.Result{}, &adapters.Error{Status: 503, Retry: true, Err: errors.New(`"busy"`)}
		}
		return adapters.Result{Status: 200}, nil
	})
	f.start()
	f.ds.Add([]store.Delivery{failing})
	f.next()
	at := f.waitAt()
	others := f.add(event(support, psid2, 2), event(support, psid3, 3))
	for range others {
		if d := f.next(); d.ID == dlv(failing) {
			t.Fatalf("%s retried before its time", d.ID)
		}
	}
	f.clock.Set(at)
	if d := f.next(); d.ID != dlv(failing) || d.Attempt != 2 {
		t.Fatalf("got %s attempt %d, want %s attempt 2", d.ID, d.Attempt, dlv(failing))
	}
}

// A slow thread holds one of its bot's workers, not the others.
func TestSlowLaneHoldsOneWorker(t *testing.T) {
	f := newFixture(t, setup{concurrency: 2})
	slow := f.enqueue(event(support, psid, 1))[0]
	release := make(chan struct{})
	var once sync.Once
	f.answer(support, func(_ int, d *adapters.Delivery) (adapters.Result, error) {
		if d.ID == dlv(slow) {
			<-release
		}
		return adapters.Result{Status: 200}, nil
	})
	f.start()
	defer once.Do(func() { close(release) })
	f.ds.Add([]store.Delivery{slow})
	if d := f.next(); d.ID != dlv(slow) {
		t.Fatalf("got %s", d.ID)
	}
	others := f.add(event(support, psid2, 2), event(support, psid2, 3), event(support, psid3, 4))
	for range others {
		if d := f.next(); d.PSID == psid {
			t.Fatalf("unexpected %s", d.ID)
		}
	}
	once.Do(func() { close(release) })
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
}

// A lane whose head does not read waits max_backoff and tries again,
// instead of spinning on it.
func TestHeadReadFailureBacksOff(t *testing.T) {
	f := newFixture(t, setup{})
	del := f.enqueue(event(support, psid, 1))[0]
	f.build()
	if err := f.ds.Load(); err != nil {
		t.Fatal(err)
	}
	f.store.FailViews(1, nil) // the lane's read of its head
	f.run()
	if at := f.waitAt(); !at.Equal(start.Add(maxBackoff)) {
		t.Fatalf("lane waits until %v, want %v", at, start.Add(maxBackoff))
	}
	if n := f.logged("delivery not read"); n != 1 {
		t.Errorf("%d \"delivery not read\" logs, want 1", n)
	}
	f.noAttempt()
	f.clock.Set(start.Add(maxBackoff))
	if d := f.next(); d.ID != dlv(del) || d.Attempt != 1 {
		t.Fatalf("got %s attempt %d", d.ID, d.Attempt)
	}
}

// The scan that brings lanes in from the store backs off when the store
// fails, and goes on.
func TestScanRetriesAfterStoreFailure(t *testing.T) {
	f := newFixture(t, setup{maxLanes: 1})
	dels := f.enqueue(event(support, psid, 1), event(support, psid2, 2))
	f.answer(support, func(_ int, d *adapters.Delivery) (adapters.Result, error) {
		if d.ID == dlv(dels[0]) {
			f.store.FailViews(1, nil) // the next read is the scan's, once this lane is done
		}
		return adapters.Result{Status: 200}, nil
	})
	f.start()
	if d := f.next(); d.ID != dlv(dels[0]) {
		t.Fatalf("got %s", d.ID)
	}
	if at := f.waitAt(); !at.Equal(start.Add(backoff)) {
		t.Fatalf("scan waits until %v, want %v", at, start.Add(backoff))
	}
	if n := f.logged("outbox lanes not read"); n != 1 {
		t.Errorf("%d \"outbox lanes not read\" logs, want 1", n)
	}
	f.clock.Set(start.Add(backoff))
	if d := f.next(); d.ID != dlv(dels[1]) {
		t.Fatalf("got %s, want %s", d.ID, dlv(dels[1]))
	}
}

// A delivery handed over again after its lane attempted it (ingress
// serves before Run, and may hand over after Load found it) is not sent
// again before its retry is due: the store's schedule wins over the copy.
func TestLateAddAfterAttempt(t *testing.T) {
	f := newFixture(t, setup{})
	del := f.enqueue(event(support, psid, 1))[0]
	f.answer(support, func(n int, d *adapters.Delivery) (adapters.Result, error) {
		if n == 1 {
			f.ds.Add([]store.Delivery{del}) // late, while the attempt is in flight
			return adapters.Result{}, &adapters.Error{Status: 503, Retry: true, Err: errors.New(`"busy"`)}
		}
		return adapters.Result{Status: 200}, nil
	})
	f.start()
	if d := f.next(); d.Attempt != 1 {
		t.Fatalf("attempt %d", d.Attempt)
	}
	at := f.waitAt()
	if s := f.stored(del.ID); !at.Equal(s.NextAttempt) {
		t.Fatalf("lane waits until %v, want the stored retry %v", at, s.NextAttempt)
	}
	f.noAttempt()
	f.clock.Set(at)
	if d := f.next(); d.ID != dlv(del) || d.Attempt != 2 {
		t.Fatalf("got %s attempt %d, want %s attempt 2", d.ID, d.Attempt, dlv(del))
	}
}
