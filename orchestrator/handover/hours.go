package handover

import (
	"context"
	"time"

	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// The hours rule: outside business hours an escalation is held (the bot
// keeps the thread, the history says why) and the closed message, if
// any, is said.

// holdEscalation records an escalation held outside business hours and
// arms the closed message.
func (e *Engine) holdEscalation(tx store.Tx, p *topology.Page, th *store.Thread, reason string, now time.Time) (Firing, error) {
	f := Firing{Rule: RuleEscalate, Result: heldResult}
	if err := tx.AppendHistory(th.ThreadKey, store.HistoryEntry{At: now, Event: "rule_" + RuleHours, From: th.Owner, To: th.Owner,
		By: "rule:" + RuleHours, Cause: store.CauseRule, Metadata: reason}); err != nil {
		return f, err
	}
	if p.Rules.Hours.ClosedMessage == "" {
		return f, nil
	}
	return f, tx.PutJob(store.Job{ThreadKey: th.ThreadKey, Rule: RuleHours, At: now, Created: now, Reason: reason})
}

// runClosedMessage tells the person that nobody is there now.
func (e *Engine) runClosedMessage(ctx context.Context, p *topology.Page, j store.Job) jobOutcome {
	h := p.Rules.Hours
	if h == nil || h.ClosedMessage == "" {
		return jobOutcome{result: skippedResult}
	}
	th, err := e.d.Threads.Current(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	actor := e.actorFor(p, th)
	if actor == nil {
		return jobOutcome{result: skippedResult}
	}
	if err := e.sendText(ctx, p, actor, j.PSID, h.ClosedMessage); err != nil {
		return outcome(err)
	}
	return jobOutcome{result: firedResult}
}
