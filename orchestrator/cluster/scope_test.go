package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
)

// A scope's lease counts until its deadline, is renewed in place, and
// once dead (or past its deadline when a renewal comes back) stays dead.
func TestScopeLeases(t *testing.T) {
	now := time.Now()
	live := newCell(store.Lease{Shard: 3, Owner: "a", Epoch: 2, Deadline: now.Add(time.Hour)})
	past := newCell(store.Lease{Shard: 1, Owner: "a", Epoch: 1, Deadline: now.Add(-time.Millisecond)})
	s := newScope([]*cell{live, past})
	if got := s.Shards(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("shards %v, want [1 3]", got)
	}
	if !s.Owns(3) || s.Owns(1) || s.Owns(2) {
		t.Errorf("owns 3 %v, 1 %v, 2 %v: want only the live lease's", s.Owns(3), s.Owns(1), s.Owns(2))
	}
	if ls := s.Leases(); len(ls) != 1 || ls[0].Shard != 3 {
		t.Errorf("leases %v, want shard 3's only", ls)
	}

	later := now.Add(2 * time.Hour)
	if !live.renew(store.Lease{Shard: 3, Epoch: 2, Deadline: later}, time.Now()) {
		t.Fatal("a live lease's renewal refused")
	}
	if l, _ := s.Lease(3); !l.Deadline.Equal(later) {
		t.Errorf("deadline %v after the renewal, want %v", l.Deadline, later)
	}
	if past.renew(store.Lease{Shard: 1, Epoch: 1, Deadline: later}, time.Now()) || s.Owns(1) {
		t.Error("a lease past its deadline came back to life by a renewal")
	}
	if !live.kill(time.Now()) || s.Owns(3) || len(s.Leases()) != 0 {
		t.Error("a killed lease still counts")
	}
	if live.kill(time.Now()) {
		t.Error("a lease killed twice counted twice")
	}
	if live.renew(store.Lease{Shard: 3, Epoch: 2, Deadline: later.Add(time.Hour)}, time.Now()) || s.Owns(3) {
		t.Error("a killed lease came back to life by a renewal")
	}
	var zero Scope
	if zero.Owns(0) || len(zero.Shards()) != 0 || len(zero.Leases()) != 0 {
		t.Error("the zero scope holds something")
	}
}

// A lease's Owns turns false at the deadline, by the clock, whatever
// the member does.
func TestScopeOwnsUntilTheDeadline(t *testing.T) {
	deadline := time.Now().Add(20 * time.Millisecond)
	s := newScope([]*cell{newCell(store.Lease{Shard: 0, Owner: "a", Epoch: 1, Deadline: deadline})})
	if !s.Owns(0) {
		t.Fatal("not owned before the deadline")
	}
	time.Sleep(time.Until(deadline)) // the deadline is the clock's: nothing to signal
	if s.Owns(0) {
		t.Error("owned at the deadline")
	}
}

func TestNameOf(t *testing.T) {
	for id, want := range map[string]string{
		"baton-1-0123456789abcdef":   "baton-1",
		"a-0123456789abcdef":         "a",
		"x-0123456789abcdef-89abcde": "x-0123456789abcdef-89abcde", // not a nonce
		"baton-1":                    "baton-1",
		"-0123456789abcdef":          "-0123456789abcdef",
		"a-0123456789ABCDEF":         "a-0123456789ABCDEF",
		"plain":                      "plain",
	} {
		if got := NameOf(id); got != want {
			t.Errorf("NameOf(%q) = %q, want %q", id, got, want)
		}
	}
}

// fixedShards is a DB of n shards that New may be given: New calls
// nothing else.
type fixedShards struct {
	DB
	n int
}

func (f fixedShards) Shards() int { return f.n }

func TestNewChecksOptions(t *testing.T) {
	terms := store.LeaseTerms{TTL: 10 * time.Second, Margin: 3 * time.Second}
	for _, c := range []struct {
		name string
		opt  Options
		db   DB
		want string // in the error; "" for none
	}{
		{"defaults", Options{Name: "baton-1", Terms: terms}, fixedShards{n: 256}, ""},
		{"no name", Options{Terms: terms}, fixedShards{n: 256}, "needs a name"},
		{"space in the name", Options{Name: "baton 1", Terms: terms}, fixedShards{n: 256}, "no spaces"},
		{"long name", Options{Name: strings.Repeat("x", 101), Terms: terms}, fixedShards{n: 256}, "at most 100"},
		{"no TTL", Options{Name: "a"}, fixedShards{n: 256}, "lease TTL"},
		{"margin over the TTL", Options{Name: "a", Terms: store.LeaseTerms{TTL: time.Second, Margin: time.Second}}, fixedShards{n: 256}, "margin"},
		{"tick past the window", Options{Name: "a", Terms: terms, Tick: 7 * time.Second}, fixedShards{n: 256}, "tick 7s"},
		{"negative tick", Options{Name: "a", Terms: terms, Tick: -time.Second}, fixedShards{n: 256}, "tick -1s"},
		{"no shards", Options{Name: "a", Terms: terms}, fixedShards{}, "0 shards"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := New(c.db, c.opt)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.opt.Tick != time.Second {
					t.Errorf("default tick %v, want 1s", m.opt.Tick)
				}
				if NameOf(m.ID()) != c.opt.Name {
					t.Errorf("id %q is not of name %q", m.ID(), c.opt.Name)
				}
				if o, _ := New(c.db, c.opt); o.ID() == m.ID() {
					t.Error("two members with one id: a restart would be the same owner")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one with %q", err, c.want)
			}
		})
	}
	short, err := New(fixedShards{n: 1}, Options{Name: "a", Terms: store.LeaseTerms{TTL: 2 * time.Second, Margin: 500 * time.Millisecond}})
	if err != nil || short.opt.Tick != 500*time.Millisecond {
		t.Errorf("tick %v (%v) for a TTL of 2s, want TTL/4", short.opt.Tick, err)
	}
}

func TestRanges(t *testing.T) {
	for _, c := range []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{5}, "5"},
		{[]int{0, 1, 2, 3, 7, 9, 10, 11, 12}, "0-3,7,9-12"},
		{[]int{1, 3, 5}, "1,3,5"},
	} {
		if got := Ranges(c.in); got != c.want {
			t.Errorf("Ranges(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
