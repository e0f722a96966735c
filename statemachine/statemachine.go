// Package statemachine is the thread-control state machine: who controls a
// conversation (idle, the page's primary app, or a secondary app) and which
// app may move it where, in each page mode, exactly as Meta's platform
// rules state them (REFERENCE §1.2, §1.3, §5). It is pure: no I/O, no
// clock; the caller passes the time in.
//
// The transitions are declared once with github.com/looplab/fsm; the guards
// that say who may fire them, per mode, are plain functions beside it. A
// fresh machine is built per input, restored to the record's state, so a
// cancelled or refused event can never leave a shared machine stuck.
package statemachine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/looplab/fsm"
)

// State is who controls a thread.
type State string

// The three control states.
const (
	Idle      State = "idle"      // nobody; the default app answers (Conversation Routing)
	Primary   State = "primary"   // the page's primary (default) app
	Secondary State = "secondary" // any other app
)

// Mode is a page's thread-control model.
type Mode string

// Page modes, named as in the YAML.
const (
	ConversationRouting Mode = "conversation_routing"
	ZeroConfig          Mode = "zero_config"
	Legacy              Mode = "legacy"
)

// Op is what happens to a thread.
type Op string

// Protocol calls, what Baton observes, and what time and people do.
const (
	OpPass    Op = "pass"
	OpTake    Op = "take"
	OpRequest Op = "request"
	OpRelease Op = "release"
	OpExtend  Op = "extend"
	OpExpire  Op = "expire"
	// OpObserve records what Meta told us (a handover webhook, the channel
	// an event came on, an echo's app_id, GET thread_owner): never refused.
	OpObserve Op = "observe"
	// OpAdmin is an operator's override: never refused.
	OpAdmin Op = "admin"
)

// Rules are Meta's, per REFERENCE.
const (
	// ControlTTL is how long control lasts without a message from the person.
	ControlTTL = 24 * time.Hour
	// MaxExtend is the longest extend_thread_control accepts.
	MaxExtend = 7 * 24 * time.Hour
)

// Page is what the machine needs to know of a page.
type Page struct {
	Mode Mode
	// Primary is the default app (Conversation Routing) or primary
	// receiver (legacy); empty in zero-config.
	Primary string
	// CanTake lists the apps with the "take control" permission
	// (Conversation Routing).
	CanTake map[string]bool
}

// Thread is the persisted control record of one conversation.
type Thread struct {
	State             State     `json:"state"`
	Owner             string    `json:"owner,omitempty"` // app id; empty when idle
	ExpiresAt         time.Time `json:"expires_at,omitzero"`
	LastUserMessageAt time.Time `json:"last_user_message_at,omitzero"`
	Version           uint64    `json:"version"`
}

// Input is one thing that happens to a thread.
type Input struct {
	Op Op
	// Caller is the acting app (pass, take, request, release, extend).
	Caller string
	// Target is where control goes: pass (empty: the default), observe and
	// admin (empty: idle).
	Target string
	// Duration of an extend.
	Duration time.Duration
	// At is when it happens.
	At time.Time
}

// Result is what Apply decided.
type Result struct {
	Thread Thread
	// Changed is true when the owner changed.
	Changed bool
	// From and To are the owners (app ids) before and after; empty is idle.
	From, To string
	// Notify is set for a request that leaves control where it is: the
	// owner is to be asked.
	Notify bool
}

// ErrRefused is what every refusal Apply returns matches with errors.Is:
// the input is one Meta's rules do not allow (the caller lacks control or
// permission, the page mode has no such call, the declared table has no
// such transition). Each refusal also matches its own reason below, whose
// text API responses show.
var ErrRefused = errors.New("thread-control call refused")

// refusal is the type of the reasons Apply refuses an input: its text is
// the reason alone, and it matches ErrRefused as well as itself.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

// Is makes every refusal match ErrRefused.
func (r *refusal) Is(target error) bool { return target == ErrRefused }

// Reasons a call is refused; match with errors.Is. Each matches ErrRefused.
var (
	ErrNotOwner          error = &refusal{"the caller does not control the thread"}
	ErrAlreadyOwner      error = &refusal{"the caller already controls the thread"}
	ErrTargetIsCaller    error = &refusal{"control cannot be passed to the caller itself"}
	ErrTargetRequired    error = &refusal{"a target app is required"}
	ErrTakeNotPermitted  error = &refusal{"the caller may not take control on this page"}
	ErrNotInMode         error = &refusal{"not supported in this page mode"}
	ErrDuration          error = &refusal{"extend duration must be between 1 second and 7 days"}
	ErrNotPrimary        error = &refusal{"only the primary app may do this"}
	ErrPrimaryMayNotAsk  error = &refusal{"the primary app takes control, it does not request it"}
	ErrInvalidTransition error = &refusal{"transition not possible from this state"}
)

// ErrNothingToExpire is what an expire returns while control has not
// lapsed (or never lapses, on a legacy page). It is not a refusal and does
// not match ErrRefused: nobody asked for anything, there is only nothing
// to do, and the timer that fires it is expected to be early or stale.
var ErrNothingToExpire = errors.New("control has not lapsed")

// errNoCaller is a call of the protocol without an acting app: a bug in
// the caller, like an unknown op, not one of Meta's refusals.
var errNoCaller = errors.New("a caller app is required")

var (
	any3    = []string{string(Idle), string(Primary), string(Secondary)}
	owned   = []string{string(Primary), string(Secondary)}
	idleSrc = []string{string(Idle)}
)

// events declares every transition once: the event name is the op and the
// destination, so "pass to the primary" and "pass to a secondary" are
// separate events with one destination each, and the sources say from
// where an op can start at all: the primary never passes to itself, a
// take by the primary starts where the primary is not the owner, a request
// grants only an idle thread (and only on a zero-config page, which has no
// primary), release and expire need an owner. decide applies the guards
// that depend on who calls; TestTableAgreesWithGuards checks that every
// input it allows is a declared transition and that every declared
// transition is reached by some allowed input.
var events = fsm.Events{
	{Name: "pass_primary", Src: []string{string(Idle), string(Secondary)}, Dst: string(Primary)},
	{Name: "pass_secondary", Src: any3, Dst: string(Secondary)},
	{Name: "take_primary", Src: []string{string(Idle), string(Secondary)}, Dst: string(Primary)},
	{Name: "take_secondary", Src: any3, Dst: string(Secondary)},
	{Name: "request_secondary", Src: idleSrc, Dst: string(Secondary)},
	{Name: "release_idle", Src: owned, Dst: string(Idle)},
	{Name: "release_primary", Src: owned, Dst: string(Primary)}, // legacy
	{Name: "expire_idle", Src: owned, Dst: string(Idle)},
	{Name: "observe_idle", Src: any3, Dst: string(Idle)},
	{Name: "observe_primary", Src: any3, Dst: string(Primary)},
	{Name: "observe_secondary", Src: any3, Dst: string(Secondary)},
	{Name: "admin_idle", Src: any3, Dst: string(Idle)},
	{Name: "admin_primary", Src: any3, Dst: string(Primary)},
	{Name: "admin_secondary", Src: any3, Dst: string(Secondary)},
}

// machines recycles FSMs: building one (maps of events and callbacks) costs
// more than the transition itself.
var machines = sync.Pool{New: func() any { return fsm.NewFSM(string(Idle), events, nil) }}

// step is what the machine does with one event from one state: the
// state it ends in, or its error.
type step struct {
	dst State
	err error
}

type stepKey struct {
	src State
	op  Op
	dst State
}

// steps is the table events declares, read off the machine once for
// every state, op and destination: the same answers as running it, at a
// map lookup each instead of a machine and a context per input (most
// inputs are an event observed on the owner's own channel).
var steps = func() map[stepKey]step {
	states := []State{Idle, Primary, Secondary}
	out := map[stepKey]step{}
	for _, src := range states {
		for _, op := range []Op{OpPass, OpTake, OpRequest, OpRelease, OpExtend, OpExpire, OpObserve, OpAdmin} {
			for _, dst := range states {
				s, err := runMachine(src, op, dst)
				out[stepKey{src, op, dst}] = step{s, err}
			}
		}
	}
	return out
}()

// transition is the state the event op_dst leads to from src, as the
// machine says.
func transition(src State, op Op, dst State) (State, error) {
	if s, ok := steps[stepKey{src, op, dst}]; ok {
		return s.dst, s.err
	}
	return runMachine(src, op, dst)
}

// runMachine runs the event op_dst on a machine restored to src. It has
// no callbacks and never sees a cancellable context, so no event can
// leave it mid-transition, and it can be reused (see machines). The same
// state again (one secondary passing to another) is NoTransitionError:
// the state holds, the owner still changes.
func runMachine(src State, op Op, dst State) (State, error) {
	m := machines.Get().(*fsm.FSM)
	defer machines.Put(m)
	m.SetState(string(src))
	if err := m.Event(context.Background(), string(op)+"_"+string(dst)); err != nil && !errors.As(err, new(fsm.NoTransitionError)) {
		return "", err
	}
	return State(m.Current()), nil
}

// Events returns the declared transitions, for documentation and tests.
func Events() fsm.Events { return append(fsm.Events(nil), events...) }

// Apply decides what in does to th on page p. It returns the new record, or
// an error wrapping one of the Err values: a refusal (matching ErrRefused)
// that says why Meta would refuse, ErrNothingToExpire, or (a bug in the
// caller) an unknown op or a protocol call without a caller.
func Apply(p Page, th Thread, in Input) (Result, error) {
	if th.State == "" {
		th.State = Idle
	}
	owner, err := decide(p, th, in)
	res := Result{Thread: th, From: th.Owner}
	if err != nil {
		return res, fmt.Errorf("%s: %w", in.Op, err)
	}
	if owner == nil { // no change of owner (extend, a request that only asks)
		res.Thread = th
		res.To = th.Owner
		res.Notify = in.Op == OpRequest
		if in.Op == OpExtend {
			// Extend never shortens control (REFERENCE §0.1): a duration
			// shorter than what is left keeps the later expiry.
			if until := in.At.Add(in.Duration); until.After(res.Thread.ExpiresAt) {
				res.Thread.ExpiresAt = until
			}
			res.Thread.Version++
		}
		return res, nil
	}
	to := *owner
	// The state is the one the record's owner has on this page now: a
	// stored state may predate a change of the page's primary in the
	// config, and the table is about owners' roles, not old labels.
	dst, err := transition(stateOf(p, th.Owner), in.Op, stateOf(p, to))
	if err != nil {
		// Only a page the config would refuse (a zero-config page with a
		// primary) gets here: TestTableAgreesWithGuards walks the rest.
		return res, fmt.Errorf("%s: %w: %w", in.Op, ErrInvalidTransition, err)
	}
	next := th
	next.State = dst
	next.Owner = to
	switch {
	case to == "":
		next.ExpiresAt = time.Time{}
	case p.Mode == Legacy:
		next.ExpiresAt = time.Time{} // legacy control does not lapse
	case in.Op == OpObserve && !in.At.IsZero() && to == th.Owner:
		// Seen again on the owner's channel: expiry unchanged here; user
		// activity is recorded with Touch.
	default:
		next.ExpiresAt = in.At.Add(ControlTTL)
	}
	next.Version++
	res.Thread, res.To, res.Changed = next, to, to != th.Owner
	return res, nil
}

// Touch records a message from the person at t: a new messaging window, and
// 24 more hours of control for the owner.
func Touch(p Page, th Thread, t time.Time) Thread {
	if th.State == "" {
		th.State = Idle
	}
	th.LastUserMessageAt = t
	if th.Owner != "" && p.Mode != Legacy && th.ExpiresAt.Before(t.Add(ControlTTL)) {
		th.ExpiresAt = t.Add(ControlTTL)
	}
	th.Version++
	return th
}

// Expired reports whether control has lapsed at t (never on legacy pages).
func Expired(p Page, th Thread, t time.Time) bool {
	return th.Owner != "" && p.Mode != Legacy && !th.ExpiresAt.IsZero() && !t.Before(th.ExpiresAt)
}

func stateOf(p Page, owner string) State {
	switch {
	case owner == "":
		return Idle
	case owner == p.Primary:
		return Primary
	default:
		return Secondary
	}
}

func ptr(s string) *string { return &s }

// decide applies the guards of each op and mode and returns the new owner,
// or nil when the owner stays.
func decide(p Page, th Thread, in Input) (*string, error) {
	me, owner := in.Caller, th.Owner
	switch in.Op {
	case OpPass, OpTake, OpRequest, OpRelease, OpExtend:
		if me == "" {
			// Nobody would otherwise "own" an idle thread and could
			// release or extend it; no API call lacks a caller.
			return nil, errNoCaller
		}
	}
	switch in.Op {
	case OpObserve, OpAdmin:
		return ptr(in.Target), nil
	case OpExpire:
		if !Expired(p, th, in.At) {
			return nil, ErrNothingToExpire
		}
		return ptr(""), nil
	case OpExtend:
		if owner != me {
			return nil, ErrNotOwner
		}
		if in.Duration < time.Second || in.Duration > MaxExtend {
			return nil, ErrDuration
		}
		return nil, nil
	case OpRelease:
		if owner != me {
			return nil, ErrNotOwner
		}
		if p.Mode == Legacy {
			return ptr(p.Primary), nil // legacy threads fall back to the primary
		}
		return ptr(""), nil
	case OpPass:
		return decidePass(p, th, in)
	case OpTake:
		switch p.Mode {
		case ZeroConfig:
			return nil, ErrNotInMode
		case Legacy:
			if me != p.Primary {
				return nil, ErrNotPrimary
			}
		default:
			if !p.CanTake[me] {
				return nil, ErrTakeNotPermitted
			}
		}
		if owner == me {
			return nil, ErrAlreadyOwner
		}
		return ptr(me), nil
	case OpRequest:
		switch p.Mode {
		case ConversationRouting:
			return nil, ErrNotInMode
		case Legacy:
			if me == p.Primary {
				return nil, ErrPrimaryMayNotAsk
			}
			if owner == me {
				return nil, ErrAlreadyOwner
			}
			return nil, nil // the primary is asked
		}
		if owner == me {
			return nil, ErrAlreadyOwner
		}
		if owner == "" {
			return ptr(me), nil // zero-config: the first to ask an idle thread gets it
		}
		return nil, nil // the owner is asked
	}
	return nil, fmt.Errorf("unknown op %q", in.Op)
}

func decidePass(p Page, th Thread, in Input) (*string, error) {
	me, owner, target := in.Caller, th.Owner, in.Target
	switch p.Mode {
	case Legacy:
		if me != p.Primary && owner != me {
			return nil, ErrNotOwner
		}
		if target == "" {
			if me == p.Primary {
				return nil, ErrTargetRequired
			}
			target = p.Primary
		}
		if target == me {
			return nil, ErrTargetIsCaller
		}
	case ZeroConfig:
		if owner != "" && owner != me {
			return nil, ErrNotOwner
		}
		if target == "" {
			return nil, ErrTargetRequired
		}
		if target == me && owner == me {
			return nil, ErrTargetIsCaller
		}
	default:
		if owner != "" && owner != me {
			return nil, ErrNotOwner
		}
		if target == "" {
			target = p.Primary
		}
		// Refused only to the owner: while the thread is idle, an app may
		// pass it to itself and so claim it (REFERENCE §0.1).
		if target == me && owner == me {
			return nil, ErrTargetIsCaller
		}
	}
	return ptr(target), nil
}
