// Package clock puts time behind an interface so that tests, the fake
// platform and (later) every timer in Baton can run on time that is moved,
// never slept through.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and wakes callers after a duration.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives the time once d has passed on
	// this clock.
	After(d time.Duration) <-chan time.Time
}

// System is the wall clock.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// After is time.After.
func (System) After(d time.Duration) <-chan time.Time { return time.After(d) }

// At returns a channel that receives the time once c reads t or later.
// Loops that compute a deadline from Now and then wait should wait with
// At: on a Manual clock moved between the two, After would wait from the
// moved time and sleep past the deadline.
func At(c Clock, t time.Time) <-chan time.Time {
	if a, ok := c.(interface {
		At(time.Time) <-chan time.Time
	}); ok {
		return a.At(t)
	}
	return c.After(t.Sub(c.Now()))
}

// Manual is a clock that moves only when told to. It is safe for
// concurrent use; waiters from After fire in time order as it advances.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewManual returns a Manual clock reading t.
func NewManual(t time.Time) *Manual { return &Manual{now: t} }

// Now returns the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// After returns a channel that fires when the clock reaches now+d.
func (m *Manual) After(d time.Duration) <-chan time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.atLocked(m.now.Add(d))
}

// At returns a channel that fires when the clock reaches t.
func (m *Manual) At(t time.Time) <-chan time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.atLocked(t)
}

func (m *Manual) atLocked(at time.Time) <-chan time.Time {
	ch := make(chan time.Time, 1)
	if !at.After(m.now) {
		ch <- m.now
		return ch
	}
	m.waiters = append(m.waiters, waiter{at: at, ch: ch})
	return ch
}

// Advance moves the clock forward by d (a negative d is ignored) and
// returns the new time.
func (m *Manual) Advance(d time.Duration) time.Time {
	if d < 0 {
		d = 0
	}
	m.mu.Lock()
	t := m.now.Add(d)
	m.mu.Unlock()
	return m.Set(t)
}

// Set moves the clock to t; it never moves backwards.
func (m *Manual) Set(t time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.After(m.now) {
		m.now = t
	}
	sort.Slice(m.waiters, func(i, j int) bool { return m.waiters[i].at.Before(m.waiters[j].at) })
	n := 0
	for _, w := range m.waiters {
		if w.at.After(m.now) {
			m.waiters[n] = w
			n++
			continue
		}
		w.ch <- m.now
	}
	m.waiters = m.waiters[:n]
	return m.now
}

// Offset is the wall clock shifted by an offset that Advance and Set move:
// time flows as usual, and a person trying the fake platform can still
// jump 25 hours ahead. Waiters from After and At fire when real time
// reaches them or when a jump passes them, so a rule timer armed for ten
// minutes fires at once when the demo's clock jumps ten minutes.
type Offset struct {
	mu      sync.Mutex
	offset  time.Duration
	waiters map[*offsetWaiter]struct{}
}

type offsetWaiter struct {
	at    time.Time
	ch    chan time.Time
	timer *time.Timer
}

// NewOffset returns a clock that reads start now and flows from there.
func NewOffset(start time.Time) *Offset {
	return &Offset{offset: time.Until(start), waiters: map[*offsetWaiter]struct{}{}}
}

// Now returns the wall clock plus the offset.
func (o *Offset) Now() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return time.Now().Add(o.offset)
}

// After returns a channel that fires once d has passed on this clock.
func (o *Offset) After(d time.Duration) <-chan time.Time { return o.At(o.Now().Add(d)) }

// At returns a channel that fires once the clock reads t or later.
func (o *Offset) At(t time.Time) <-chan time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	ch := make(chan time.Time, 1)
	now := time.Now().Add(o.offset)
	if !t.After(now) {
		ch <- now
		return ch
	}
	w := &offsetWaiter{at: t, ch: ch}
	o.waiters[w] = struct{}{}
	// The offset only grows, so real time reaching t-now is the latest
	// the waiter can fire.
	w.timer = time.AfterFunc(t.Sub(now), func() { o.fire(w) })
	return ch
}

func (o *Offset) fire(w *offsetWaiter) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.waiters[w]; ok {
		delete(o.waiters, w)
		w.ch <- time.Now().Add(o.offset)
	}
}

// Advance moves the clock forward by d.
func (o *Offset) Advance(d time.Duration) time.Time {
	o.mu.Lock()
	if d > 0 {
		o.offset += d
	}
	o.mu.Unlock()
	return o.wake()
}

// Set moves the clock to t; it never moves backwards.
func (o *Offset) Set(t time.Time) time.Time {
	o.mu.Lock()
	if d := time.Until(t); d > o.offset {
		o.offset = d
	}
	o.mu.Unlock()
	return o.wake()
}

// wake fires the waiters a jump has passed.
func (o *Offset) wake() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now().Add(o.offset)
	for w := range o.waiters {
		if !w.at.After(now) {
			w.timer.Stop()
			delete(o.waiters, w)
			w.ch <- now
		}
	}
	return now
}
