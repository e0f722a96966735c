package storetest

import (
	"context"
	"errors"
	"sync"

	"github.com/batonhq/baton/store"
)

// ErrInjected is the error a Faulty store fails with unless told another.
var ErrInjected = errors.New("storetest: injected store failure")

// Faulty wraps a real store and fails the transactions a test chooses, so
// that the code around a failed write can be tested on a real backend.
// A failed Update does not run its function: nothing of it is written.
type Faulty struct {
	store.Store

	mu      sync.Mutex
	updates int // Updates left to fail; -1 fails every one
	views   int
	err     error
	// before, when set, decides each Update: a non-nil error fails it.
	before func() error
	// calls counts the transactions asked for, failed or not.
	nUpdates, nViews int
}

// Calls reports how many Updates and Views were asked for, failed or not.
func (f *Faulty) Calls() (updates, views int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nUpdates, f.nViews
}

// NewFaulty wraps s; until told otherwise it passes everything through.
func NewFaulty(s store.Store) *Faulty { return &Faulty{Store: s, err: ErrInjected} }

// FailUpdates makes the next n Updates fail with err (ErrInjected when
// nil); n < 0 fails every one until Heal.
func (f *Faulty) FailUpdates(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates, f.err = n, errOr(err)
}

// FailViews makes the next n Views fail with err (ErrInjected when nil);
// n < 0 fails every one until Heal.
func (f *Faulty) FailViews(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views, f.err = n, errOr(err)
}

// BeforeUpdate runs hook before each Update; an error from it fails that
// Update. nil removes the hook.
func (f *Faulty) BeforeUpdate(hook func() error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before = hook
}

// Heal stops every failure.
func (f *Faulty) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates, f.views, f.before = 0, 0, nil
}

// Update fails when told to, else runs fn on the real store.
func (f *Faulty) Update(ctx context.Context, fn func(store.Tx) error) error {
	f.mu.Lock()
	f.nUpdates++
	hook := f.before
	fail := f.updates != 0
	if f.updates > 0 {
		f.updates--
	}
	err := f.err
	f.mu.Unlock()
	if fail {
		return err
	}
	if hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	return f.Store.Update(ctx, fn)
}

// View fails when told to, else runs fn on the real store.
func (f *Faulty) View(fn func(store.ReadTx) error) error {
	f.mu.Lock()
	f.nViews++
	fail := f.views != 0
	if f.views > 0 {
		f.views--
	}
	err := f.err
	f.mu.Unlock()
	if fail {
		return err
	}
	return f.Store.View(fn)
}

func errOr(err error) error {
	if err == nil {
		return ErrInjected
	}
	return err
}
