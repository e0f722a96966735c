package clock

import (
	"testing"
	"time"
)

func TestManualAfterFiresInOrderOnlyWhenReached(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewManual(start)
	late := m.After(2 * time.Hour)
	early := m.After(time.Hour)

	m.Advance(59 * time.Minute)
	select {
	case <-early:
		t.Fatal("fired before its time")
	default:
	}
	m.Advance(time.Minute)
	if got := <-early; !got.Equal(start.Add(time.Hour)) {
		t.Fatalf("early fired at %v", got)
	}
	select {
	case <-late:
		t.Fatal("late fired an hour early")
	default:
	}
	m.Set(start) // backwards: ignored
	if !m.Now().Equal(start.Add(time.Hour)) {
		t.Fatalf("clock moved backwards to %v", m.Now())
	}
	m.Advance(time.Hour)
	<-late
}

func TestManualAfterNonPositiveFiresAtOnce(t *testing.T) {
	m := NewManual(time.Unix(0, 0))
	select {
	case <-m.After(0):
	default:
		t.Fatal("After(0) did not fire")
	}
}

func TestOffsetFlowsAndAdvances(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	o := NewOffset(start)
	if d := o.Now().Sub(start); d < 0 || d > time.Minute {
		t.Fatalf("starts %v from its start", d)
	}
	before := o.Now()
	o.Advance(25 * time.Hour)
	if d := o.Now().Sub(before); d < 25*time.Hour || d > 25*time.Hour+time.Minute {
		t.Fatalf("advance moved %v", d)
	}
	o.Set(start) // backwards: ignored
	if o.Now().Before(before.Add(25 * time.Hour)) {
		t.Fatal("moved backwards")
	}
}

func TestOffsetWaitersFireOnJumpsAndInRealTime(t *testing.T) {
	o := NewOffset(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	far := o.After(10 * time.Minute)
	farther := o.At(o.Now().Add(time.Hour))
	soon := o.After(20 * time.Millisecond)
	select {
	case <-far:
		t.Fatal("fired before its time")
	default:
	}
	<-soon // real time reaches it: no jump needed
	o.Advance(10 * time.Minute)
	select {
	case <-far:
	case <-time.After(5 * time.Second):
		t.Fatal("a jump past the waiter did not fire it")
	}
	select {
	case <-farther:
		t.Fatal("a jump short of the waiter fired it")
	default:
	}
	o.Set(o.Now().Add(time.Hour))
	select {
	case <-farther:
	case <-time.After(5 * time.Second):
		t.Fatal("Set past the waiter did not fire it")
	}
	if len(o.waiters) != 0 {
		t.Fatalf("%d waiters left", len(o.waiters))
	}
}

func TestDoubling(t *testing.T) {
	for n, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 6: 32 * time.Second, 7: time.Minute, 100: time.Minute} {
		if got := Doubling(n, time.Second, time.Minute); got != want {
			t.Errorf("Doubling(%d) = %v, want %v", n, got, want)
		}
	}
}
