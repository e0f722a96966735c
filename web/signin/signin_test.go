package signin

import (
	"fmt"
	"testing"
	"time"

	"github.com/batonhq/baton/clock"
)

func TestLimiter(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	l := New(time.Minute, clk.Now)
	addr := func(a string) []Limit { return []Limit{{"addr:" + a, 3}, {"all", 5}} }

	// Attempts under way count before they fail: a fourth started while
	// three are being checked is refused.
	var started []*Attempt
	for i := range 3 {
		a, ok := l.Begin(addr("1.2.3.4")...)
		if !ok {
			t.Fatalf("attempt %d refused", i)
		}
		started = append(started, a)
	}
	if _, ok := l.Begin(addr("1.2.3.4")...); ok {
		t.Fatal("a fourth attempt from one address while three are under way")
	}
	// A right secret takes its attempt back.
	started[0].Succeeded()
	if _, ok := l.Begin(addr("1.2.3.4")...); !ok {
		t.Fatal("refused after one of three succeeded")
	}
	// The shared limit: 5 in all.
	if _, ok := l.Begin(addr("5.6.7.8")...); !ok {
		t.Fatal("another address refused")
	}
	if _, ok := l.Begin(addr("9.9.9.9")...); !ok {
		t.Fatal("the fifth attempt in all refused")
	}
	if _, ok := l.Begin(addr("10.0.0.1")...); ok {
		t.Fatal("a sixth attempt in all")
	}
	// A refused attempt counted nothing.
	clk.Advance(30 * time.Second)
	if _, ok := l.Begin(addr("5.6.7.8")...); ok {
		t.Fatal("all five still in the window")
	}
	clk.Advance(30 * time.Second)
	if _, ok := l.Begin(addr("1.2.3.4")...); !ok {
		t.Fatal("a minute later: still refused")
	}
}

// A flood of new keys neither grows the memory past MaxKeys nor wipes
// the counts already kept.
func TestLimiterFlood(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	l := New(time.Minute, clk.Now)
	for range 2 {
		if _, ok := l.Begin(Limit{"agent:anna", 2}); !ok {
			t.Fatal("anna refused early")
		}
	}
	for i := range MaxKeys + 10 {
		l.Begin(Limit{fmt.Sprintf("ip:%d", i), 2})
	}
	if len(l.m) > MaxKeys {
		t.Fatalf("%d keys kept", len(l.m))
	}
	if _, ok := l.Begin(Limit{"agent:anna", 2}); ok {
		t.Fatal("the flood wiped anna's count")
	}
	if _, ok := l.Begin(Limit{"ip:new", 2}); ok {
		t.Fatal("a new key while the table is full")
	}
	clk.Advance(time.Minute)
	if _, ok := l.Begin(Limit{"ip:new", 2}); !ok {
		t.Fatal("a new key once the flood aged out")
	}
}
