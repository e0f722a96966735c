package statemachine

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	appP  = "P"  // the page's primary / default app, may take
	appS1 = "S1" // a secondary without the take permission
	appS2 = "S2" // a secondary with it
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

var errByCode = map[string]error{
	"!owner":   ErrNotOwner,
	"!already": ErrAlreadyOwner,
	"!self":    ErrTargetIsCaller,
	"!target":  ErrTargetRequired,
	"!perm":    ErrTakeNotPermitted,
	"!mode":    ErrNotInMode,
	"!primary": ErrNotPrimary,
	"!ask":     ErrPrimaryMayNotAsk,
}

func page(m Mode) Page {
	p := Page{Mode: m, Primary: appP, CanTake: map[string]bool{appP: true, appS2: true}}
	if m == ZeroConfig {
		p.Primary = ""
	}
	return p
}

// TestEveryStateOpCallerMode walks every (mode, owner, op, caller). Each
// row gives the outcome for the callers P, S1, S2: the new owner ("-" for
// idle), "=" for no change, "?" for a request that asks the owner, or an
// error code.
func TestEveryStateOpCallerMode(t *testing.T) {
	ops := map[string]Input{
		"pass":    {Op: OpPass},
		"pass S2": {Op: OpPass, Target: appS2},
		"pass P":  {Op: OpPass, Target: appP},
		"take":    {Op: OpTake},
		"request": {Op: OpRequest},
		"release": {Op: OpRelease},
		"extend":  {Op: OpExtend, Duration: time.Hour},
	}
	table := map[Mode]map[string][3]string{ // op -> owner "" | P | S1 -> "P S1 S2"
		ConversationRouting: {
			// Idle: an app may pass the thread to itself and so claim it
			// (REFERENCE §0.1); only the owner may not.
			"pass":    {"P P P", "!self !owner !owner", "!owner P !owner"},
			"pass S2": {"S2 S2 S2", "S2 !owner !owner", "!owner S2 !owner"},
			"pass P":  {"P P P", "!self !owner !owner", "!owner P !owner"},
			"take":    {"P !perm S2", "!already !perm S2", "P !perm S2"},
			"request": {"!mode !mode !mode", "!mode !mode !mode", "!mode !mode !mode"},
			"release": {"!owner !owner !owner", "- !owner !owner", "!owner - !owner"},
			"extend":  {"!owner !owner !owner", "= !owner !owner", "!owner = !owner"},
		},
		ZeroConfig: {
			"pass":    {"!target !target !target", "!target !owner !owner", "!owner !target !owner"},
			"pass S2": {"S2 S2 S2", "S2 !owner !owner", "!owner S2 !owner"},
			"pass P":  {"P P P", "!self !owner !owner", "!owner P !owner"},
			"take":    {"!mode !mode !mode", "!mode !mode !mode", "!mode !mode !mode"},
			"request": {"P S1 S2", "!already ? ?", "? !already ?"},
			"release": {"!owner !owner !owner", "- !owner !owner", "!owner - !owner"},
			"extend":  {"!owner !owner !owner", "= !owner !owner", "!owner = !owner"},
		},
		Legacy: {
			"pass":    {"!target !owner !owner", "!target !owner !owner", "!target P !owner"},
			"pass S2": {"S2 !owner !owner", "S2 !owner !owner", "S2 S2 !owner"},
			"pass P":  {"!self !owner !owner", "!self !owner !owner", "!self P !owner"},
			"take":    {"P !primary !primary", "!already !primary !primary", "P !primary !primary"},
			"request": {"!ask ? ?", "!ask ? ?", "!ask !already ?"},
			"release": {"!owner !owner !owner", "P !owner !owner", "!owner P !owner"},
			"extend":  {"!owner !owner !owner", "= !owner !owner", "!owner = !owner"},
		},
	}
	owners := [3]string{"", appP, appS1}
	callers := [3]string{appP, appS1, appS2}
	rows := 0
	for mode, byOp := range table {
		p := page(mode)
		for opName, in := range ops {
			row, ok := byOp[opName]
			if !ok {
				t.Fatalf("%s: no row for %s", mode, opName)
			}
			for oi, owner := range owners {
				want := strings.Fields(row[oi])
				for ci, caller := range callers {
					rows++
					name := fmt.Sprintf("%s/%s/owner=%q/caller=%s", mode, opName, owner, caller)
					th := Thread{State: stateOf(p, owner), Owner: owner, Version: 7}
					if owner != "" {
						th.ExpiresAt = t0.Add(time.Hour)
					}
					in := in
					in.Caller, in.At = caller, t0
					checkOutcome(t, name, p, th, in, want[ci])
				}
			}
		}
	}
	if rows != 3*7*3*3 {
		t.Fatalf("%d rows", rows)
	}
}

func checkOutcome(t *testing.T, name string, p Page, th Thread, in Input, want string) {
	t.Helper()
	res, err := Apply(p, th, in)
	if strings.HasPrefix(want, "!") {
		if !errors.Is(err, errByCode[want]) {
			t.Errorf("%s: got %v, want %v", name, err, errByCode[want])
		}
		if res.Thread != th {
			t.Errorf("%s: a refusal changed the record: %+v", name, res.Thread)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: unexpected %v", name, err)
		return
	}
	switch want {
	case "=", "?":
		if res.Thread.Owner != th.Owner || res.Changed || res.Notify != (want == "?") {
			t.Errorf("%s: got %+v, want owner unchanged (notify %v)", name, res, want == "?")
		}
		return
	case "-":
		want = ""
	}
	got := res.Thread
	if got.Owner != want || got.State != stateOf(p, want) || res.To != want || res.From != th.Owner || got.Version != th.Version+1 {
		t.Errorf("%s: got %+v (%+v), want owner %q", name, got, res, want)
	}
	switch {
	case want == "" || p.Mode == Legacy:
		if !got.ExpiresAt.IsZero() {
			t.Errorf("%s: expiry %v on an idle or legacy thread", name, got.ExpiresAt)
		}
	case !got.ExpiresAt.Equal(in.At.Add(ControlTTL)):
		t.Errorf("%s: expiry %v, want 24h after %v", name, got.ExpiresAt, in.At)
	}
}

func TestExtend(t *testing.T) {
	p := page(ConversationRouting)
	th := Thread{State: Secondary, Owner: appS1, ExpiresAt: t0.Add(time.Hour)}
	res, err := Apply(p, th, Input{Op: OpExtend, Caller: appS1, Duration: 72 * time.Hour, At: t0})
	if err != nil || !res.Thread.ExpiresAt.Equal(t0.Add(72*time.Hour)) || res.Thread.Version != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	for _, d := range []time.Duration{0, time.Millisecond, MaxExtend + time.Second} {
		if _, err := Apply(p, th, Input{Op: OpExtend, Caller: appS1, Duration: d, At: t0}); !errors.Is(err, ErrDuration) {
			t.Errorf("extend %v: %v", d, err)
		}
	}
	if _, err := Apply(p, th, Input{Op: OpExtend, Caller: appS1, Duration: MaxExtend, At: t0}); err != nil {
		t.Errorf("extend 7 days: %v", err)
	}
}

func TestExpire(t *testing.T) {
	p := page(ConversationRouting)
	th := Touch(p, Thread{State: Secondary, Owner: appS1}, t0)
	if !th.ExpiresAt.Equal(t0.Add(ControlTTL)) || !th.LastUserMessageAt.Equal(t0) {
		t.Fatalf("touch %+v", th)
	}
	if _, err := Apply(p, th, Input{Op: OpExpire, At: t0.Add(23 * time.Hour)}); !errors.Is(err, ErrNothingToExpire) {
		t.Fatalf("early expire: %v", err)
	}
	res, err := Apply(p, th, Input{Op: OpExpire, At: t0.Add(25 * time.Hour)})
	if err != nil || res.Thread.State != Idle || res.Thread.Owner != "" || res.From != appS1 || !res.Changed {
		t.Fatalf("expire %+v %v", res, err)
	}
	if _, err := Apply(page(Legacy), Thread{State: Secondary, Owner: appS1}, Input{Op: OpExpire, At: t0.Add(1000 * time.Hour)}); !errors.Is(err, ErrNothingToExpire) {
		t.Fatalf("legacy control expired: %v", err)
	}
	// A message from the person while an extension runs does not shorten it.
	ext := Thread{State: Secondary, Owner: appS1, ExpiresAt: t0.Add(72 * time.Hour)}
	if got := Touch(p, ext, t0); !got.ExpiresAt.Equal(ext.ExpiresAt) {
		t.Fatalf("touch shortened an extension to %v", got.ExpiresAt)
	}
}

func TestObserveAndAdminAreNeverRefused(t *testing.T) {
	for _, mode := range []Mode{ConversationRouting, ZeroConfig, Legacy} {
		p := page(mode)
		for _, from := range []string{"", appP, appS1} {
			for _, to := range []string{"", appP, appS1, appS2, "263902037430900"} {
				for _, op := range []Op{OpObserve, OpAdmin} {
					th := Thread{State: stateOf(p, from), Owner: from}
					res, err := Apply(p, th, Input{Op: op, Target: to, At: t0})
					if err != nil || res.Thread.Owner != to || res.Thread.State != stateOf(p, to) || res.Changed != (from != to) {
						t.Errorf("%s %s %q->%q: %+v %v", mode, op, from, to, res, err)
					}
				}
			}
		}
	}
}

func TestEmptyRecordIsIdle(t *testing.T) {
	res, err := Apply(page(ConversationRouting), Thread{}, Input{Op: OpPass, Caller: appS1, Target: appS2, At: t0})
	if err != nil || res.Thread.State != Secondary || res.From != "" {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := Apply(page(ConversationRouting), Thread{}, Input{Op: "dance", Caller: appP}); err == nil {
		t.Fatal("unknown op accepted")
	}
}

// Every event Apply can fire is declared, with one destination.
func TestDeclaration(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Events() {
		if seen[e.Name] {
			t.Errorf("event %s declared twice", e.Name)
		}
		seen[e.Name] = true
		if !strings.HasSuffix(e.Name, "_"+e.Dst) {
			t.Errorf("event %s does not end in its destination %s", e.Name, e.Dst)
		}
	}
}

// Extend never shortens control: a shorter duration than what is left
// keeps the later expiry.
func TestExtendNeverShortens(t *testing.T) {
	p := page(ConversationRouting)
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	th := Thread{State: Secondary, Owner: appS1, ExpiresAt: at.Add(72 * time.Hour)}
	for _, c := range []struct {
		d    time.Duration
		want time.Time
	}{{time.Hour, at.Add(72 * time.Hour)}, {7 * 24 * time.Hour, at.Add(7 * 24 * time.Hour)}} {
		res, err := Apply(p, th, Input{Op: OpExtend, Caller: appS1, Duration: c.d, At: at})
		if err != nil || !res.Thread.ExpiresAt.Equal(c.want) {
			t.Errorf("extend %v: %v %v, want %v", c.d, res.Thread.ExpiresAt, err, c.want)
		}
	}
}

// Every declared event is in the table Apply reads, with the machine's
// own answer: an op added to events and not to steps' ops would run the
// machine on each input again.
func TestStepsAreTheMachines(t *testing.T) {
	for _, e := range events {
		for _, src := range any3 {
			op, dst, _ := strings.Cut(e.Name, "_")
			s, ok := steps[stepKey{State(src), Op(op), State(dst)}]
			if !ok {
				t.Fatalf("%s from %s is not in steps", e.Name, src)
			}
			want, err := runMachine(State(src), Op(op), State(dst))
			if s.dst != want || (s.err == nil) != (err == nil) {
				t.Errorf("%s from %s: table %q %v, machine %q %v", e.Name, src, s.dst, s.err, want, err)
			}
		}
	}
}
