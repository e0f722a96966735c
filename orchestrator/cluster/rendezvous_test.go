package cluster

import (
	"fmt"
	"slices"
	"testing"
)

func TestAssignSpreadsEvenly(t *testing.T) {
	const n = 256
	for _, names := range [][]string{
		{"a", "b"},
		{"baton-1", "baton-2", "baton-3"},
		{"r0", "r1", "r2", "r3", "r4"},
		{"x", "y", "z", "w", "v", "u", "t", "s"},
	} {
		t.Run(fmt.Sprint(len(names)), func(t *testing.T) {
			got := assign(names, n)
			count := map[string]int{}
			for _, name := range got {
				count[name]++
			}
			fair := n / len(names)
			for _, name := range names {
				// Binomial spread: within about 3 standard deviations.
				if c := count[name]; c < fair*6/10 || c > fair*14/10 {
					t.Errorf("%s gets %d of %d shards among %d names: want about %d", name, c, n, len(names), fair)
				}
			}
			// Every replica computes the same: the order of the names
			// does not matter.
			rev := slices.Clone(names)
			slices.Reverse(rev)
			if !slices.Equal(assign(rev, n), got) {
				t.Error("the assignment depends on the order of the names")
			}
		})
	}
}

// A name that joins takes shards only for itself, about its share; one
// that leaves frees only its own.
func TestAssignMovesLittle(t *testing.T) {
	const n = 256
	before := assign([]string{"a", "b", "c"}, n)
	after := assign([]string{"a", "b", "c", "d"}, n)
	moved := 0
	for s := range n {
		if before[s] != after[s] {
			moved++
			if after[s] != "d" {
				t.Errorf("shard %d moved from %s to %s when d joined", s, before[s], after[s])
			}
		}
	}
	if moved < n/4*6/10 || moved > n/4*14/10 {
		t.Errorf("%d shards moved to the fourth name, want about %d", moved, n/4)
	}
	gone := assign([]string{"a", "c"}, n)
	for s := range n {
		if before[s] != "b" && gone[s] != before[s] {
			t.Errorf("shard %d of %s moved to %s when b left", s, before[s], gone[s])
		}
	}
}

func TestAssignNoNames(t *testing.T) {
	for s, name := range assign(nil, 4) {
		if name != "" {
			t.Errorf("shard %d assigned to %q with no names", s, name)
		}
	}
}
