// Package signin bounds the guessing of a secret at a sign-in form (the
// operator console's admin token, an inbox agent's password): attempts
// per key (a client address, an account name, everyone) in a sliding
// window.
//
// An attempt counts from the moment it starts, not once it has failed:
// a check that first asks "may this address try?" and records the
// failure only after the secret was compared lets every request sent at
// once through while the first is still being checked (a bcrypt
// comparison takes tens of milliseconds; a request can hold its body
// back for as long as it likes). A right secret takes its attempt back.
package signin

import (
	"slices"
	"sync"
	"time"
)

// Limit is at most Max attempts under Key in the window.
type Limit struct {
	Key string
	Max int
}

// MaxKeys bounds the keys remembered. When that many have attempts in
// the window, an attempt under a key not yet seen is refused until some
// age out: a flood of addresses or names must neither grow the memory
// nor wipe the counts of the accounts it is guessing at.
const MaxKeys = 10000

// Limiter counts attempts. Its zero value is not usable; see New.
type Limiter struct {
	mu     sync.Mutex
	window time.Duration
	now    func() time.Time
	m      map[string][]time.Time // key -> its attempts in the window, oldest first
}

// New returns a Limiter over a sliding window, on the clock now.
func New(window time.Duration, now func() time.Time) *Limiter {
	return &Limiter{window: window, now: now, m: map[string][]time.Time{}}
}

// Attempt is one sign-in under way; Succeeded takes it back.
type Attempt struct {
	l    *Limiter
	keys []string
	at   time.Time
}

// Begin starts an attempt under every limit, or refuses it (false, and
// nothing counted) when one of them has had its Max attempts in the
// window. Call it before reading the secret.
func (l *Limiter) Begin(limits ...Limit) (*Attempt, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	fresh := 0
	for _, lim := range limits {
		ts := l.recent(now, lim.Key)
		if len(ts) >= lim.Max {
			return nil, false
		}
		if len(ts) == 0 {
			fresh++
		}
	}
	if fresh > 0 && len(l.m)+fresh > MaxKeys {
		l.prune(now)
		if len(l.m)+fresh > MaxKeys {
			return nil, false
		}
	}
	a := &Attempt{l: l, at: now}
	for _, lim := range limits {
		l.m[lim.Key] = append(l.m[lim.Key], now)
		a.keys = append(a.keys, lim.Key)
	}
	return a, true
}

// Succeeded takes the attempt back: a right secret is no guess.
func (a *Attempt) Succeeded() {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range a.keys {
		ts := l.m[k]
		if i := slices.Index(ts, a.at); i >= 0 {
			ts = slices.Delete(ts, i, i+1)
		}
		if len(ts) == 0 {
			delete(l.m, k)
		} else {
			l.m[k] = ts
		}
	}
}

// recent drops key's attempts older than the window and returns the rest.
func (l *Limiter) recent(now time.Time, key string) []time.Time {
	ts := l.m[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.window {
		i++
	}
	if i == 0 {
		return ts
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.m, key)
	} else {
		l.m[key] = ts
	}
	return ts
}

func (l *Limiter) prune(now time.Time) {
	for k := range l.m {
		l.recent(now, k)
	}
}
