package ingress

import (
	"context"
	"testing"
	"time"
)

// The body budget grants a share that fits at once, keeps its last
// quarter for small bodies, lets a small body past a large one that
// waits, wakes a waiter when a share is given back, and gives up after
// its wait or when the request ends.
func TestBudget(t *testing.T) {
	const mib = 1 << 20
	ctx := context.Background()
	b := NewBudget(8 * mib)
	for i := range 6 { // large shares: 6 MiB of 8, three quarters
		if !b.Acquire(ctx, mib, 0) {
			t.Fatalf("large share %d refused with %d in use", i, b.InFlight())
		}
	}
	if b.Acquire(ctx, mib, 10*time.Millisecond) {
		t.Fatal("a seventh large share got into the small bodies' quarter")
	}
	for _, n := range []int64{0, 2 << 10, SmallBody} {
		if !b.Acquire(ctx, n, 0) {
			t.Fatalf("a small share of %d bytes refused beside the large ones", n)
		}
		b.Release(n)
	}

	// A large request waits; a small one goes past it; a release lets
	// the large one in.
	got := make(chan bool)
	go func() { got <- b.Acquire(ctx, mib, 10*time.Second) }()
	if !b.Acquire(ctx, 4<<10, 0) {
		t.Fatal("a small share waited behind a large one")
	}
	b.Release(4 << 10)
	b.Release(mib)
	if !<-got {
		t.Fatal("the waiting large share was not granted on a release")
	}

	// Small shares may fill the rest; then even a small one waits, and
	// gives up when its request ends.
	for b.Acquire(ctx, SmallBody, 0) {
	}
	if b.InFlight() > 8*mib {
		t.Fatalf("%d bytes in flight, over the budget", b.InFlight())
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { got <- b.Acquire(cctx, 1<<10, 10*time.Second) }()
	cancel()
	if <-got {
		t.Fatal("granted after its request ended")
	}
	// A share over what large ones may hold is capped, not refused for
	// ever.
	if c := NewBudget(4 * mib); !c.Acquire(ctx, 100*mib, 0) || c.InFlight() != 3*mib {
		t.Fatalf("an oversized share: %d in flight, want it capped at 3 MiB", c.InFlight())
	}
}
