package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/store"
)

// batches makes the support bot answer each batch with fn (n counts
// batches from 1) and reports every batch, as it starts, on the channel.
func (f *fixture) batches(fn func(n int, ds []*adapters.Delivery) []adapters.Outcome) <-chan []adapters.Delivery {
	ch := make(chan []adapters.Delivery, 1000)
	var mu sync.Mutex
	calls := 0
	f.bots[support].BatchFunc = func(_ context.Context, ds []*adapters.Delivery) []adapters.Outcome {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		cp := make([]adapters.Delivery, len(ds))
		for i, d := range ds {
			cp[i] = *d
		}
		ch <- cp
		return fn(n, ds)
	}
	return ch
}

func nextBatch(t *testing.T, ch <-chan []adapters.Delivery) []adapters.Delivery {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no batch in 10s")
		return nil
	}
}

func delivered(n int) []adapters.Outcome {
	return make([]adapters.Outcome, n) // no error: delivered, no actions
}

// A thread contributes one delivery to a batch, is never in two batches
// at once, and its deliveries reach the bot in order across batches;
// everything arrives once.
func TestBatchOrderAndLanes(t *testing.T) {
	for _, tt := range []struct {
		name                      string
		concurrency, max, threads int
		perThread                 int
	}{
		{"one worker, batches of 3, 4 threads", 1, 3, 4, 3},
		{"one worker, batch larger than the threads", 1, 10, 3, 4},
		{"4 workers, batches of 2, 6 threads", 4, 2, 6, 5},
		{"batches of 1", 2, 1, 3, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, setup{concurrency: tt.concurrency, batch: fmt.Sprintf("{max: %d}", tt.max)})
			var mu sync.Mutex
			inFlight := map[string]bool{}
			var overlap []string
			ch := f.batches(func(_ int, ds []*adapters.Delivery) []adapters.Outcome {
				mu.Lock()
				for _, d := range ds {
					if inFlight[d.PSID] {
						overlap = append(overlap, d.ID)
					}
					inFlight[d.PSID] = true
				}
				mu.Unlock()
				time.Sleep(time.Millisecond) // let other workers' batches overlap this one
				mu.Lock()
				for _, d := range ds {
					delete(inFlight, d.PSID)
				}
				mu.Unlock()
				return delivered(len(ds))
			})
			var dels []store.Delivery
			for i := range tt.perThread {
				for th := range tt.threads {
					dels = append(dels, event(support, fmt.Sprint(7000+th), i))
				}
			}
			dels = f.enqueue(dels...)
			f.start()
			got := map[string][]string{} // psid -> delivery ids in arrival order
			for n := 0; n < len(dels); {
				b := nextBatch(t, ch)
				if len(b) > tt.max {
					t.Fatalf("batch of %d, max %d", len(b), tt.max)
				}
				seen := map[string]bool{}
				for _, d := range b {
					if seen[d.PSID] {
						t.Fatalf("thread %s twice in one batch %v", d.PSID, b)
					}
					seen[d.PSID] = true
					got[d.PSID] = append(got[d.PSID], d.ID)
					n++
				}
			}
			for th := range tt.threads {
				psid := fmt.Sprint(7000 + th)
				var want []string
				for _, d := range dels {
					if d.PSID == psid {
						want = append(want, dlv(d))
					}
				}
				if !slices.Equal(got[psid], want) {
					t.Errorf("thread %s got %v, want %v", psid, got[psid], want)
				}
			}
			mu.Lock()
			if len(overlap) > 0 {
				t.Errorf("threads in two batches at once: %v", overlap)
			}
			mu.Unlock()
			eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
			if n := f.count(support, "delivered"); n != len(dels) {
				t.Errorf("delivered %d, want %d", n, len(dels))
			}
		})
	}
}

// One answer settles each envelope its own way: delivered with actions,
// retried on its own backoff, or dead; the rest of each thread follows
// in a later batch, after its head is settled.
func TestBatchPartialAnswer(t *testing.T) {
	f := newFixture(t, setup{concurrency: 1, batch: "{max: 3}"})
	acts := []adapters.Action{{Type: "pass", To: billing}}
	ch := f.batches(func(n int, ds []*adapters.Delivery) []adapters.Outcome {
		out := delivered(len(ds))
		if n > 1 {
			return out
		}
		for i, d := range ds {
			switch d.PSID {
			case psid:
				out[i].Result.Actions = acts
			case psid2:
				out[i].Err = &adapters.Error{Status: 503, Retry: true, Err: errors.New("busy")}
			case psid3:
				out[i].Err = &adapters.Error{Status: 400, Err: errors.New("bad")}
			}
		}
		return out
	})
	dels := f.enqueue(event(support, psid, 1), event(support, psid2, 2), event(support, psid3, 3), event(support, psid, 4), event(support, psid2, 5))
	f.start()
	if b := nextBatch(t, ch); len(b) != 3 {
		t.Fatalf("first batch %d envelopes, want the 3 heads", len(b))
	}
	if c := f.nextActions(); c.del.ID != dels[0].ID || len(c.acts) != 1 {
		t.Fatalf("actions for %d: %+v, want the bot's for %d", c.del.ID, c.acts, dels[0].ID)
	}
	// Thread 1 goes on; thread 2 waits for its head's retry; thread 3's
	// head is dead, and its lane has nothing after it.
	b := nextBatch(t, ch)
	if len(b) != 1 || b[0].ID != dlv(dels[3]) {
		t.Fatalf("second batch %v, want only %s", ids(b), dlv(dels[3]))
	}
	if dead := f.dead(); len(dead) != 1 || dead[0].ID != dels[2].ID || dead[0].Attempts != 1 {
		t.Fatalf("dead letters %+v, want %d after 1 attempt", dead, dels[2].ID)
	}
	if s := f.stored(dels[1].ID); s.Attempts != 1 || !s.NextAttempt.After(start) {
		t.Fatalf("retried head stored %+v", s)
	}
	f.reach()
	b = nextBatch(t, ch)
	if len(b) != 1 || b[0].ID != dlv(dels[1]) || b[0].Attempt != 2 {
		t.Fatalf("after the backoff %v, want %s attempt 2", b, dlv(dels[1]))
	}
	if b = nextBatch(t, ch); len(b) != 1 || b[0].ID != dlv(dels[4]) {
		t.Fatalf("then %v, want %s", ids(b), dlv(dels[4]))
	}
	eventually(t, "outbox empty", func() bool { return len(f.outbox()) == 0 })
}

// A batch that fails as a whole is retried, each delivery on its own
// attempts and backoff, and each dies after the attempt limit; the next
// delivery of a thread follows only once its head is dead.
func TestBatchFailureToDeadLetters(t *testing.T) {
	f := newFixture(t, setup{concurrency: 1, batch: "{max: 10}"})
	dels := f.enqueue(event(support, psid, 1), event(support, psid2, 2), event(support, psid, 3))
	heads := map[string]bool{dlv(dels[0]): true, dlv(dels[1]): true}
	ch := f.batches(func(_ int, ds []*adapters.Delivery) []adapters.Outcome {
		out := delivered(len(ds))
		for i, d := range ds {
			if heads[d.ID] {
				out[i].Err = &adapters.Error{Status: 503, Retry: true, Err: errors.New("down")}
			}
		}
		return out
	})
	f.start()
	attempts := map[string][]int{}
	deadline := time.After(10 * time.Second)
	for len(attempts[dlv(dels[2])]) == 0 || len(attempts[dlv(dels[1])]) < maxAttempts {
		select {
		case b := <-ch:
			for _, d := range b {
				if d.ID == dlv(dels[2]) && len(attempts[dlv(dels[0])]) < maxAttempts {
					t.Fatalf("%s sent while its head had %d attempts", d.ID, len(attempts[dlv(dels[0])]))
				}
				attempts[d.ID] = append(attempts[d.ID], d.Attempt)
			}
		case at := <-f.clock.waits:
			f.clock.Set(at)
		case <-deadline:
			t.Fatalf("after 10s: attempts %v", attempts)
		}
	}
	for _, d := range dels[:2] {
		if got := attempts[dlv(d)]; !slices.Equal(got, []int{1, 2, 3}) {
			t.Errorf("%s attempts %v, want 1, 2, 3", dlv(d), got)
		}
	}
	eventually(t, "two dead letters", func() bool { return len(f.dead()) == 2 })
	if n := f.count(support, "dead"); n != 2 {
		t.Errorf("dead counter %d", n)
	}
}

// batch.wait holds a batch that is not full for more lanes to come.
func TestBatchWaitsForMore(t *testing.T) {
	f := newFixture(t, setup{concurrency: 1, batch: "{max: 3, wait: 2ms}"})
	ch := f.batches(func(_ int, ds []*adapters.Delivery) []adapters.Outcome { return delivered(len(ds)) })
	f.start()
	f.add(event(support, psid, 1))
	at := f.waitAt()
	if want := start.Add(2 * time.Millisecond); !at.Equal(want) {
		t.Fatalf("waits until %s, want %s", at, want)
	}
	f.add(event(support, psid2, 2), event(support, psid3, 3))
	select {
	case b := <-ch:
		t.Fatalf("batch %v sent before the wait ended", ids(b))
	default:
	}
	f.clock.Set(at)
	if b := nextBatch(t, ch); len(b) != 3 {
		t.Fatalf("batch %v, want all 3", ids(b))
	}
}

func ids(b []adapters.Delivery) []string {
	var out []string
	for _, d := range b {
		out = append(out, d.ID)
	}
	return out
}
