package statemachine

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// appX is an app the page does not know (a bot Meta names in a webhook).
const appX = "263902037430900"

// TestTableAgreesWithGuards walks every (mode, owner, op, caller, target)
// with the apps in every role (the primary, a secondary with and without
// the take permission, an unknown app, nobody), and checks that decide and
// the declared table agree: every change of owner decide allows is a
// declared event from the owner's state, and every declared (event,
// source) is reached by some allowed input.
func TestTableAgreesWithGuards(t *testing.T) {
	type transition struct{ event, src string }
	declared := map[transition]bool{}
	for _, e := range Events() {
		for _, src := range e.Src {
			declared[transition{e.Name, src}] = true
		}
	}
	reached := map[transition]bool{}
	apps := []string{"", appP, appS1, appS2, appX}
	ops := []Op{OpPass, OpTake, OpRequest, OpRelease, OpExtend, OpExpire, OpObserve, OpAdmin}
	inputs := 0
	for _, mode := range []Mode{ConversationRouting, ZeroConfig, Legacy} {
		p := page(mode)
		for _, owner := range apps {
			th := Thread{State: stateOf(p, owner), Owner: owner, Version: 7}
			if owner != "" {
				th.ExpiresAt = t0.Add(time.Hour)
			}
			for _, op := range ops {
				for _, caller := range apps {
					for _, target := range apps {
						for _, in := range []Input{
							{Op: op, Caller: caller, Target: target, Duration: time.Hour, At: t0},
							{Op: op, Caller: caller, Target: target, At: t0.Add(2 * time.Hour)}, // an invalid extend; a lapsed owner
						} {
							inputs++
							name := fmt.Sprintf("%s/owner=%q/%s/caller=%q/target=%q/at=%s", mode, owner, op, caller, target, in.At.Sub(t0))
							to, err := decide(p, th, in)
							_, applyErr := Apply(p, th, in)
							if !errors.Is(applyErr, err) {
								t.Errorf("%s: Apply says %v, decide %v", name, applyErr, err)
							}
							if err != nil && !errors.Is(err, ErrNothingToExpire) && !errors.Is(err, errNoCaller) && !errors.Is(err, ErrRefused) {
								t.Errorf("%s: %v is not ErrRefused", name, err)
							}
							if err != nil || to == nil {
								continue
							}
							tr := transition{string(op) + "_" + string(stateOf(p, *to)), string(stateOf(p, owner))}
							if !declared[tr] {
								t.Errorf("%s: decide allows %s from %s, which is not declared", name, tr.event, tr.src)
							}
							reached[tr] = true
						}
					}
				}
			}
		}
	}
	for tr := range declared {
		if !reached[tr] {
			t.Errorf("%s from %s is declared but no allowed input fires it", tr.event, tr.src)
		}
	}
	if inputs != 3*5*8*5*5*2 {
		t.Fatalf("%d inputs", inputs)
	}
}

// TestEveryRefusalIsErrRefused pins each refusal's text (API responses
// show it) and checks that it matches ErrRefused, bare and wrapped as
// Apply wraps it, and that ErrNothingToExpire does not.
func TestEveryRefusalIsErrRefused(t *testing.T) {
	refusals := map[error]string{
		ErrNotOwner:          "the caller does not control the thread",
		ErrAlreadyOwner:      "the caller already controls the thread",
		ErrTargetIsCaller:    "control cannot be passed to the caller itself",
		ErrTargetRequired:    "a target app is required",
		ErrTakeNotPermitted:  "the caller may not take control on this page",
		ErrNotInMode:         "not supported in this page mode",
		ErrDuration:          "extend duration must be between 1 second and 7 days",
		ErrNotPrimary:        "only the primary app may do this",
		ErrPrimaryMayNotAsk:  "the primary app takes control, it does not request it",
		ErrInvalidTransition: "transition not possible from this state",
	}
	for err, text := range refusals {
		if err.Error() != text {
			t.Errorf("text %q, want %q", err.Error(), text)
		}
		wrapped := fmt.Errorf("%s: %w", OpPass, err)
		if !errors.Is(err, ErrRefused) || !errors.Is(wrapped, ErrRefused) || !errors.Is(wrapped, err) {
			t.Errorf("%q does not match ErrRefused and itself", text)
		}
		for other := range refusals {
			if other != err && errors.Is(err, other) {
				t.Errorf("%q matches %q", text, other)
			}
		}
	}
	if errors.Is(ErrNothingToExpire, ErrRefused) {
		t.Error("ErrNothingToExpire matches ErrRefused")
	}
	// Every refusal Apply returns, as the orchestrator sees it.
	p := page(ConversationRouting)
	_, err := Apply(p, Thread{State: Secondary, Owner: appS1}, Input{Op: OpRelease, Caller: appS2, At: t0})
	if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrNotOwner) || err.Error() != "release: the caller does not control the thread" {
		t.Errorf("release by another app: %v", err)
	}
}

// A page the config refuses (zero-config with a primary) can make decide
// allow what the table does not have: Apply refuses it, and says so.
func TestUndeclaredTransitionIsRefused(t *testing.T) {
	p := Page{Mode: ZeroConfig, Primary: appP}
	th := Thread{State: Idle}
	res, err := Apply(p, th, Input{Op: OpRequest, Caller: appP, At: t0})
	if !errors.Is(err, ErrInvalidTransition) || !errors.Is(err, ErrRefused) || res.Thread != th {
		t.Fatalf("%+v %v", res, err)
	}
}

// A record stored before the page's primary changed is read by its
// owner's role now: the new primary may take it from the old one.
func TestStaleStateFollowsTheOwner(t *testing.T) {
	p := page(ConversationRouting) // primary P
	th := Thread{State: Primary, Owner: appS2}
	res, err := Apply(p, th, Input{Op: OpTake, Caller: appP, At: t0})
	if err != nil || res.Thread.State != Primary || res.Thread.Owner != appP {
		t.Fatalf("%+v %v", res, err)
	}
}

// A protocol call without an acting app is a bug in the caller, refused
// before any guard (an empty caller would "own" an idle thread).
func TestProtocolCallNeedsCaller(t *testing.T) {
	for _, op := range []Op{OpPass, OpTake, OpRequest, OpRelease, OpExtend} {
		_, err := Apply(page(ZeroConfig), Thread{}, Input{Op: op, Target: appS1, Duration: time.Hour, At: t0})
		if !errors.Is(err, errNoCaller) || errors.Is(err, ErrRefused) {
			t.Errorf("%s without a caller: %v", op, err)
		}
	}
}
