package handover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// The hold: while a human agent has a conversation claimed or is typing
// in it, the app that owns the thread (an inbox) tells Baton so through
// the bot API, and the return rule waits for it instead of taking the
// conversation away mid-reply. A hold is a lease: the owner renews it
// while it lasts, so an inbox that crashed holds nothing for long.

// Activity kinds, as the bot API names them.
const (
	ActivityTyping   = "typing"   // an agent is writing a reply
	ActivityClaimed  = "claimed"  // an agent has the conversation (renewed while kept)
	ActivityReleased = "released" // nobody holds it any more
)

// Hold lengths: what an activity holds when the call names no time, and
// the longest a call may ask for.
const (
	DefaultTypingHold = 2 * time.Minute
	DefaultClaimHold  = 5 * time.Minute
	MaxHold           = time.Hour
)

// ErrNotHolder is what Hold returns, wrapped, when the calling app does
// not own the thread: only the owner may hold it. It is a refusal (the
// APIs answer 409).
var ErrNotHolder = fmt.Errorf("only the thread's owner may hold it: %w", statemachine.ErrRefused)

// ErrBadActivity is a kind or a time Hold does not accept.
var ErrBadActivity = errors.New("bad activity")

// Activity is an owner's report of a human's activity on a thread.
type Activity struct {
	Page, PSID string
	App        *topology.App // the calling app
	Kind       string
	Agent      string        // who, for operators; free text
	For        time.Duration // how long it holds; 0: the kind's default
}

// Hold records an activity on the thread and moves its return timer to
// match: later while held, back to when the quiet time ends (now, if it
// already has) once released. It returns the thread as saved.
func (e *Engine) Hold(ctx context.Context, a Activity) (store.Thread, error) {
	p := e.d.Topology.Page(a.Page)
	if p == nil || a.App == nil {
		return store.Thread{}, fmt.Errorf("%w: no such page or app", ErrBadActivity)
	}
	d := a.For
	switch {
	case a.Kind == ActivityReleased:
	case a.Kind != ActivityTyping && a.Kind != ActivityClaimed:
		return store.Thread{}, fmt.Errorf("%w: kind %q is not typing, claimed or released", ErrBadActivity, a.Kind)
	case d < 0 || d > MaxHold:
		return store.Thread{}, fmt.Errorf("%w: a hold of %s: want up to %s", ErrBadActivity, d, MaxHold)
	case d == 0 && a.Kind == ActivityTyping:
		d = DefaultTypingHold
	case d == 0:
		d = DefaultClaimHold
	}
	k := store.ThreadKey{Page: p.ID, PSID: a.PSID}
	var out store.Thread
	err := e.d.Store.Update(context.WithoutCancel(ctx), func(tx store.Tx) error {
		th, err := threads.Load(tx, p, k)
		if err != nil {
			return err
		}
		now := e.d.Clock.Now()
		if cur := threads.Expire(p, th.Thread, now); cur.Owner != a.App.ID || cur.Owner == "" {
			return fmt.Errorf("%s: %w", a.App.Name, ErrNotHolder)
		}
		if a.Kind == ActivityReleased {
			th.HoldUntil, th.HeldBy = time.Time{}, ""
		} else if until := now.Add(d); until.After(th.HoldUntil) || a.Kind == ActivityClaimed {
			// A claim renewed sets its own end; typing never shortens
			// a longer hold.
			th.HoldUntil, th.HeldBy = until, a.Agent
		}
		if err := tx.PutThread(th); err != nil {
			return err
		}
		out = th
		return e.moveReturn(tx, p, th, now)
	})
	if err != nil {
		return out, err
	}
	e.d.Jobs.Ring()
	return out, nil
}

// moveReturn sets the thread's return job, if it has one, to when the
// rule may next fire.
func (e *Engine) moveReturn(tx store.Tx, p *topology.Page, th store.Thread, now time.Time) error {
	if p.Rules == nil || p.Rules.Return == nil {
		return nil
	}
	j, err := tx.Job(th.ThreadKey, RuleReturn)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	due := returnDue(th, p.Rules.Return.After)
	if due.Before(now) {
		due = now
	}
	if due.Equal(j.At) {
		return nil
	}
	j.At = due
	return tx.PutJob(j)
}

// returnDue is when the return rule may fire: after the quiet time from
// the last activity, and not while the thread is held.
func returnDue(th store.Thread, after time.Duration) time.Time {
	due := th.ActiveAt.Add(after)
	if th.HoldUntil.After(due) {
		due = th.HoldUntil
	}
	return due
}
