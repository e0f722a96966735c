package hooks

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/fakeconfig"
)

// How the webhook sender reproduces Meta's disorder (REFERENCE §0.1,
// §2.1, §3.3). Meta sends each subscribed app its own copy of an event on
// its own connection, so copies reach different apps in either order; it
// retries, so one app's webhooks may arrive out of order or twice; and it
// batches entries in any order. Here each app has a lane: a queue and at
// most one goroutine posting from it, apart from every other lane. What a
// lane posts next, after what delay, in what batch order and whether it
// posts it again are drawn from the lane's own random sequence, seeded
// from Settings.Seed and the app id: the same seed and the same webhooks
// Queued for an app give the same choices, whatever other apps get. A
// lane can be held, so that a test decides which app's copies go first.

// lane is one app's webhooks. Fields are guarded by Sender.mu.
type lane struct {
	queue   []*post
	running bool // a goroutine is posting from the queue
	held    bool
	rng     *rand.Rand
}

// post is one webhook POST: Queued entries (one, until batched), or a
// repeat of a POST that was delivered, with its exact body.
type post struct {
	entries []Queued
	body    []byte // set once built; a Queued post with a body is a repeat
}

func (p *post) repeat() bool { return p.body != nil }

// lane returns the app's lane, creating it. Callers hold s.mu.
func (s *Sender) lane(appID messenger.ID) *lane {
	l := s.lanes[appID]
	if l == nil {
		h := fnv.New64a()
		_, _ = h.Write([]byte(appID))
		l = &lane{held: s.holdAll, rng: rand.New(rand.NewPCG(uint64(s.settings.Seed), h.Sum64()))}
		s.lanes[appID] = l
	}
	return l
}

// Enqueue queues q on its app's lane.
func (s *Sender) Enqueue(q Queued) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	l := s.lane(q.App.ID)
	l.queue = append(l.queue, &post{entries: []Queued{q}})
	s.wake(l)
	s.updateIdle()
}

// wake starts the lane's goroutine if it has work it may do. Callers hold
// s.mu.
func (s *Sender) wake(l *lane) {
	if l.running || !s.ready(l) {
		return
	}
	l.running = true
	s.wg.Add(1)
	go s.run(l)
}

// ready reports whether the lane may post now. Callers hold s.mu.
func (s *Sender) ready(l *lane) bool {
	return !s.closed && !l.held && len(l.queue) > 0
}

// updateIdle opens or closes the idle channel Settle waits on: the sender
// is busy while a lane is posting (a POST in flight, its retries, its
// delay) or has webhooks that are not held. Callers hold s.mu.
func (s *Sender) updateIdle() {
	busy := false
	for _, l := range s.lanes {
		if l.running || s.ready(l) {
			busy = true
			break
		}
	}
	switch {
	case busy && !s.busy:
		s.idle = make(chan struct{})
	case !busy && s.busy:
		close(s.idle)
	}
	s.busy = busy
}

// run posts from the lane until it is empty, held or closed.
func (s *Sender) run(l *lane) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		l.running = false
		s.updateIdle()
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		if !s.ready(l) {
			s.mu.Unlock()
			return
		}
		d := s.delay(l)
		s.mu.Unlock()
		if d > 0 && !s.sleep(d) {
			return
		}

		s.mu.Lock()
		if !s.ready(l) { // held or closed during the delay
			s.mu.Unlock()
			return
		}
		p := s.next(l)
		s.mu.Unlock()

		repeat := p.repeat()
		delivered := s.send(p)

		s.mu.Lock()
		if pr := s.settings.WebhookRepeat; delivered && !repeat && pr > 0 && l.rng.Float64() < pr {
			l.queue = append(l.queue, &post{entries: p.entries, body: p.body})
		}
		s.mu.Unlock()
	}
}

// delay draws how long the lane's next POST waits. Callers hold s.mu.
func (s *Sender) delay(l *lane) time.Duration {
	d := s.settings.WebhookDelay
	if d.Max <= d.Min {
		return d.Min
	}
	return d.Min + time.Duration(l.rng.Int64N(int64(d.Max-d.Min)+1))
}

// next takes the lane's next POST off its queue: the head (per_app) or
// one drawn from the window (shuffled), batched with up to MaxBatch-1
// more entries of the same object, picked the same way, and put in a
// random order if BatchOrder says so. A repeat goes alone, as it was.
// Callers hold s.mu.
func (s *Sender) next(l *lane) *post {
	shuffled := s.settings.WebhookOrder == fakeconfig.OrderShuffled
	i := 0
	if shuffled {
		i = l.rng.IntN(min(len(l.queue), s.settings.WebhookWindow))
	}
	first := l.take(i)
	if first.repeat() {
		return first
	}
	object := first.entries[0].Object
	batch := append([]Queued(nil), first.entries...)
	joins := func(p *post) bool { return !p.repeat() && p.entries[0].Object == object }
	for len(batch) < s.settings.MaxBatch && len(l.queue) > 0 {
		j := 0
		if shuffled {
			var fits []int
			for k, p := range l.queue[:min(len(l.queue), s.settings.WebhookWindow)] {
				if joins(p) {
					fits = append(fits, k)
				}
			}
			if len(fits) == 0 {
				break
			}
			j = fits[l.rng.IntN(len(fits))]
		} else if !joins(l.queue[0]) {
			break // in order, a batch ends where the next post cannot join
		}
		batch = append(batch, l.take(j).entries...)
	}
	if s.settings.BatchOrder == fakeconfig.OrderShuffled && len(batch) > 1 {
		l.rng.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
	}
	return &post{entries: batch}
}

// take removes and returns the i-th Queued post.
func (l *lane) take(i int) *post {
	p := l.queue[i]
	l.queue = append(l.queue[:i], l.queue[i+1:]...)
	return p
}

// Hold stops an app's webhooks (every app's, those with none Queued yet
// too, when appID is empty) after the POST in flight, until Release.
// Held webhooks stay Queued and do not count for settle.
func (s *Sender) Hold(appID messenger.ID) { s.setHeld(appID, true) }

// Release lets a held app's webhooks go (every app's when appID is empty).
func (s *Sender) Release(appID messenger.ID) { s.setHeld(appID, false) }

func (s *Sender) setHeld(appID messenger.ID, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if appID == "" {
		s.holdAll = held
		for _, l := range s.lanes {
			l.held = held
		}
	} else {
		s.lane(appID).held = held
	}
	if !held {
		for _, l := range s.lanes {
			s.wake(l)
		}
	}
	s.updateIdle()
}

// Settle waits until no webhook that may go is Queued, delayed or in
// flight, repeats included; held webhooks do not count.
func (s *Sender) Settle(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("webhooks still pending: %w", ctx.Err())
	}
}
