package handover

import (
	"context"
	"fmt"
	"time"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// The return rule: a thread a secondary (a human) holds goes back to the
// primary, or to idle, after a time without activity.

// AfterTransition keeps the return timer in step with the owner: armed
// when a secondary gets the thread, dropped when it leaves one. It is the
// ledger's hook, run in the transaction of every change of owner.
func AfterTransition(tx store.Tx, p *topology.Page, th *store.Thread, now time.Time) error {
	// A hold is the owner's: a new owner starts without one.
	th.HoldUntil, th.HeldBy = time.Time{}, ""
	if p.Rules == nil || p.Rules.Return == nil {
		return nil
	}
	if holdsThread(p, *th) {
		return tx.DeleteJob(th.ThreadKey, RuleReturn)
	}
	return tx.PutJob(store.Job{ThreadKey: th.ThreadKey, Rule: RuleReturn, At: now.Add(p.Rules.Return.After), Created: now})
}

// runReturn gives control back from a secondary that has been quiet for
// the rule's time, or moves the timer to the last activity or to the end
// of the owner's hold (hold.go).
func (e *Engine) runReturn(ctx context.Context, p *topology.Page, j store.Job) jobOutcome {
	rt := p.Rules.Return
	if rt == nil {
		return jobOutcome{result: skippedResult}
	}
	th, err := e.d.Threads.Current(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	if holdsThread(p, th) {
		return jobOutcome{result: skippedResult}
	}
	now := e.d.Clock.Now()
	if due := returnDue(th, rt.After); due.After(now) {
		return jobOutcome{rearm: due} // something happened since, or an agent holds it: wait
	}
	primary := e.d.Topology.App(p.Primary)
	owner := e.d.Topology.AppByID(th.Owner)
	md := fmt.Sprintf("return: no activity for %s", rt.After)
	req := threads.Request{Page: p.ID, PSID: j.PSID, Metadata: md, Cause: store.CauseRule, By: "rule:" + RuleReturn}
	ownerActs := p.CanAct(owner)
	switch {
	case ownerActs && rt.To == config.ReturnPrimary:
		req.App, req.Op, req.Target = owner.Name, statemachine.OpPass, p.Primary
	case ownerActs:
		req.App, req.Op = owner.Name, statemachine.OpRelease
	default: // an external owner (Page Inbox): the primary takes
		req.App, req.Op = primary.Name, statemachine.OpTake
	}
	if _, err := e.d.Threads.Control(ctx, req); err != nil {
		return outcome(err)
	}
	if !ownerActs && rt.To == config.ReturnIdle {
		req.App, req.Op = primary.Name, statemachine.OpRelease
		if _, err := e.d.Threads.Control(ctx, req); err != nil {
			return outcome(err)
		}
	}
	if rt.Message != "" {
		if err := e.sendText(ctx, p, primary, j.PSID, rt.Message); err != nil {
			e.d.Errors.Record(recent.Error{Kind: "rule", App: primary.Name, Page: p.ID, PSID: j.PSID, Message: "return message not sent: " + err.Error()})
		}
	}
	return jobOutcome{result: firedResult}
}
