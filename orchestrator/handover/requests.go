package handover

import (
	"context"
	"fmt"
	"time"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// The requests rule: a request_thread_control that reaches a hosted owner
// is answered by policy: ask (the bot decides), approve, approve_if_idle
// (when the owner has been quiet long enough), or refuse.

// armRequest decides a control request by the page's policy.
func (e *Engine) armRequest(tx store.Tx, p *topology.Page, rcv *topology.App, ev *messenger.Event, th *store.Thread, now time.Time) (Firing, error) {
	rq := p.Rules.Requests
	if rq == nil || rq.Policy == config.RequestsAsk || th.Owner != rcv.ID {
		return Firing{}, nil
	}
	k := th.ThreadKey
	requester := e.d.Topology.AppByID(string(ev.RequestThreadControl.RequestedOwnerAppID))
	if requester == nil || !p.HasApp(requester.ID) {
		return Firing{Problem: &recent.Error{Kind: "rule", App: rcv.Name, Page: p.ID, PSID: k.PSID,
			Message: fmt.Sprintf("request_thread_control from app %s, which is not on the page in the config: left to the bot", ev.RequestThreadControl.RequestedOwnerAppID)}}, nil
	}
	approve := rq.Policy == config.RequestsApprove
	if rq.Policy == config.RequestsApproveIfIdle {
		if now.Sub(th.OwnerActiveAt) < rq.Idle {
			return Firing{}, nil // the owner is active: its bot decides
		}
		approve = true
	}
	if !approve {
		return Firing{Rule: RuleRequests, Result: refusedResult}, tx.AppendHistory(k, store.HistoryEntry{At: now, Event: "rule_" + RuleRequests, From: th.Owner, To: th.Owner,
			By: "rule:" + RuleRequests, Cause: store.CauseRule, Metadata: fmt.Sprintf("request from %s refused by policy", requester.Name)})
	}
	return Firing{Rule: RuleRequests, Result: armedResult}, tx.PutJob(store.Job{ThreadKey: k, Rule: RuleRequests, At: now, Created: now, App: rcv.Name, Target: requester.Name,
		Metadata: truncate(ev.RequestThreadControl.Metadata, 1000), Reason: fmt.Sprintf("request from %s approved (%s)", requester.Name, rq.Policy)})
}

// runApprove passes the thread from its owner to the app that asked.
func (e *Engine) runApprove(ctx context.Context, p *topology.Page, j store.Job) jobOutcome {
	owner := e.d.Topology.App(j.App)
	th, err := e.d.Threads.Current(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	if owner == nil || th.Owner != owner.ID {
		return jobOutcome{result: skippedResult}
	}
	_, err = e.d.Threads.Control(ctx, threads.Request{Page: p.ID, PSID: j.PSID, App: owner.Name, Op: statemachine.OpPass, Target: j.Target,
		Metadata: j.Metadata, Cause: store.CauseRule, By: "rule:" + RuleRequests})
	return outcome(err)
}
