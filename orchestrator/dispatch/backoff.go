package dispatch

import (
	"math/rand/v2"
	"time"

	"github.com/batonhq/baton/clock"
)

// Backoff is the wait before an attempt-th retry: doubling from base up to
// ceiling, with jitter (half fixed, half random) so that a bot coming
// back is not hit by every lane at once.
func Backoff(base, ceiling time.Duration, attempt int) time.Duration {
	b := clock.Doubling(attempt, base, ceiling)
	return b/2 + rand.N(b/2+1)
}
