package dispatch_test

import (
	"testing"
	"time"

	"github.com/batonhq/baton/orchestrator/dispatch"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		base, ceiling time.Duration
		attempt       int
		b             time.Duration // the wait lies within [b/2, b]
	}{
		{time.Second, 30 * time.Second, 0, time.Second},
		{time.Second, 30 * time.Second, 1, time.Second},
		{time.Second, 30 * time.Second, 2, 2 * time.Second},
		{time.Second, 30 * time.Second, 3, 4 * time.Second},
		{time.Second, 30 * time.Second, 4, 8 * time.Second},
		{time.Second, 30 * time.Second, 5, 16 * time.Second},
		{time.Second, 30 * time.Second, 6, 30 * time.Second}, // 32s, capped
		{time.Second, 30 * time.Second, 7, 30 * time.Second},
		{time.Second, 30 * time.Second, 1000, 30 * time.Second},
		{500 * time.Millisecond, 5 * time.Minute, 10, 256 * time.Second},
		{500 * time.Millisecond, 5 * time.Minute, 11, 5 * time.Minute},
		{time.Minute, time.Minute, 3, time.Minute},
		{2 * time.Minute, time.Minute, 1, time.Minute}, // base over the ceiling
		{0, time.Minute, 5, 0},
	} {
		lo, hi := tc.b, time.Duration(0)
		for range 500 {
			w := dispatch.Backoff(tc.base, tc.ceiling, tc.attempt)
			if w < tc.b/2 || w > tc.b {
				t.Fatalf("Backoff(%v, %v, %d) = %v, want within [%v, %v]", tc.base, tc.ceiling, tc.attempt, w, tc.b/2, tc.b)
			}
			lo, hi = min(lo, w), max(hi, w)
		}
		if tc.b > 0 && lo == hi {
			t.Errorf("Backoff(%v, %v, %d) is always %v: no jitter", tc.base, tc.ceiling, tc.attempt, lo)
		}
	}
}
