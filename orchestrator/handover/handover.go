// Package handover runs the page's handover rules: escalation to a human,
// entry points, business hours, the policy for control requests, return
// after inactivity, failover when a bot's deliveries fail and failback
// when it recovers. A rule decides inside the transaction that saw its
// cause (ingress's, the dispatcher's, a transition's) and writes a job,
// durable with that cause; the job runner makes the Graph calls through
// the thread-control service. A restart finds the job and runs it; a job
// whose work Meta already did is refused by the state machine and
// dropped, so nothing runs twice. One file per rule.
package handover

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// Rule names: a job's Rule, the metric's label, the history's "by".
const (
	RuleEscalate = "escalate"
	RuleHours    = "hours"
	RuleEntry    = "entry"
	RuleRequests = "requests"
	RuleReturn   = "return"
	RuleFailover = "failover"
	RuleFailback = "failback"
)

// Rules lists every rule's name, for reading a thread's pending jobs.
var Rules = []string{RuleEscalate, RuleHours, RuleEntry, RuleRequests, RuleReturn, RuleFailover, RuleFailback}

// Rule results, the metric's other label.
const (
	firedResult   = "fired"   // the rule acted
	heldResult    = "held"    // an escalation outside business hours
	refusedResult = "refused" // a request refused by policy
	skippedResult = "skipped" // the thread moved on before the job ran
	failedResult  = "failed"  // Meta refused, or retries ran out
	armedResult   = "armed"   // a job was written
)

// jobMaxAttempts bounds the retries of a job whose Graph call failed in a
// way worth retrying (a timeout, Meta's 5xx, rate limits).
const jobMaxAttempts = 8

// Firing is what a rule did with one event, counted once its transaction
// committed.
type Firing struct {
	Rule, Result string
	// Page and PSID are the thread it fired on, for the log.
	Page, PSID string
	// Problem is what the rule could not do, for recent errors.
	Problem *recent.Error
}

// Armed reports whether the firing wrote a job, which the job runner may
// have to run before its next deadline.
func (f Firing) Armed() bool {
	return f.Result == armedResult || (f.Result == heldResult && f.Rule == RuleEscalate)
}

// Threads is what the rules need of the thread-control service.
type Threads interface {
	Control(ctx context.Context, req threads.Request) (store.Thread, error)
	Current(p *topology.Page, k store.ThreadKey) (store.Thread, error)
}

// Sender sends the rules' messages to a person (messenger.Client).
type Sender interface {
	Send(ctx context.Context, cred messenger.Credentials, req *messenger.SendRequest) (*messenger.SendResponse, error)
}

// Health is what failover and failback need to know of a bot.
type Health interface {
	// FailingSince is when the bot's oldest failing delivery was created.
	FailingSince(app string) (time.Time, bool)
	// Recovered reports whether the bot delivered since t and is not
	// failing.
	Recovered(app string, t time.Time) bool
}

// Deps are what the rules need.
type Deps struct {
	Store    store.Store
	Topology *topology.Topology
	Threads  Threads
	Sender   Sender
	Health   Health
	Clock    clock.Clock
	Log      *zap.Logger
	Metrics  *metrics.Set
	Errors   *recent.Errors
	// Backoff is the wait before a failed job's attempt-th retry.
	Backoff func(attempt int) time.Duration
	// Jobs wakes the job runner when a write armed an earlier job.
	Jobs *clock.Bell
	// Wake is called after a write that may have armed a timer or job.
	Wake func()
}

// Engine runs the rules of every page.
type Engine struct{ d Deps }

// New builds the engine.
func New(d Deps) *Engine {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Wake == nil {
		d.Wake = func() {}
	}
	if d.Jobs == nil {
		d.Jobs = clock.NewBell()
	}
	return &Engine{d: d}
}

// Arm arms the job a person's event or a handover event calls for. It
// runs inside the ingress transaction, once per event (duplicates and the
// other apps' copies are dropped before).
func (e *Engine) Arm(tx store.Tx, p *topology.Page, rcv *topology.App, ev *messenger.Event, th *store.Thread, now time.Time) (Firing, error) {
	f, err := e.arm(tx, p, rcv, ev, th, now)
	if f.Rule != "" {
		f.Page, f.PSID = p.ID, th.PSID
	}
	return f, err
}

func (e *Engine) arm(tx store.Tx, p *topology.Page, rcv *topology.App, ev *messenger.Event, th *store.Thread, now time.Time) (Firing, error) {
	if p.Rules == nil {
		return Firing{}, nil
	}
	switch kind := ev.Kind(); kind {
	case messenger.KindMessage, messenger.KindPostback, messenger.KindReferral:
		if !holdsThread(p, *th) || (kind == messenger.KindPostback && ev.Postback.Payload == "") {
			return Firing{}, nil // a postback's standby copy has no payload: its owner's copy decides
		}
		if f, armed, err := e.armEntry(tx, p, ev, th, now); armed || err != nil {
			return f, err
		}
		return e.armEscalate(tx, p, ev, th, now)
	case messenger.KindRequestThreadControl:
		return e.armRequest(tx, p, rcv, ev, th, now)
	}
	return Firing{}, nil
}

// Fired counts and logs what the rules did once their transaction
// committed.
func (e *Engine) Fired(fs []Firing) {
	for _, f := range fs {
		e.d.Metrics.Rules.WithLabelValues(f.Rule, f.Result).Inc()
		e.d.Log.Info("rule firing", zap.String("rule", f.Rule), zap.String("result", f.Result), zap.String("page", f.Page), zap.String("psid", f.PSID))
	}
}

// holdsThread reports whether the bot side has the thread: idle, or the
// primary. Escalation and entry rules move threads only from there; they
// never take a conversation from a human.
func holdsThread(p *topology.Page, th store.Thread) bool {
	return th.Owner == "" || th.Owner == p.SM.Primary
}

// actorFor is the hosted app that acts for the bot side of a thread: its
// owner when Baton hosts it, else (idle) the primary, else any hosted app
// with a token on the page (zero-config).
func (e *Engine) actorFor(p *topology.Page, th store.Thread) *topology.App {
	if a := e.d.Topology.AppByID(th.Owner); p.CanAct(a) {
		return a
	}
	if th.Owner != "" {
		return nil
	}
	return p.FirstActor()
}

// sendText sends a text message to the person as app a.
func (e *Engine) sendText(ctx context.Context, p *topology.Page, a *topology.App, psid, text string) error {
	cred, ok := p.Credentials(a)
	if !ok {
		return errNoToken(a, p)
	}
	_, err := e.d.Sender.Send(ctx, cred, &messenger.SendRequest{Recipient: messenger.Recipient{ID: messenger.ID(psid)}, MessagingType: "RESPONSE",
		Message: &messenger.OutgoingMessage{Text: text}})
	e.d.Metrics.GraphCalls.WithLabelValues("send", threads.GraphResult(err)).Inc()
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
