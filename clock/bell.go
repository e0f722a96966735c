package clock

import "time"

// A Bell wakes a loop that sleeps on the clock until its next deadline,
// when a write has armed an earlier one. Ringing never blocks, and rings
// while the loop is busy fold into one: the loop re-reads its next
// deadline anyway.
type Bell struct{ ch chan struct{} }

// NewBell returns a Bell nobody has rung.
func NewBell() *Bell { return &Bell{ch: make(chan struct{}, 1)} }

// Ring wakes the loop, or leaves one wake-up pending for it.
func (b *Bell) Ring() {
	select {
	case b.ch <- struct{}{}:
	default:
	}
}

// C is the channel the loop waits on beside its deadline.
func (b *Bell) C() <-chan struct{} { return b.ch }

// Doubling is how long to wait after n failures in a row: base, doubled
// for each failure after the first, at most ceiling. Loops that back off
// share it so that they back off alike.
func Doubling(n int, base, ceiling time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}
