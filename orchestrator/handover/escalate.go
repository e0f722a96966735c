package handover

import (
	"context"
	"fmt"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// The escalation rule: words, patterns or payloads from the person while
// the bot side holds the thread hand it to the rule's target (a human).
// Outside business hours the hours rule holds it (hours.go).

// armEscalate arms the escalation job for the first rule the person's
// words or payload match.
func (e *Engine) armEscalate(tx store.Tx, p *topology.Page, ev *messenger.Event, th *store.Thread, now time.Time) (Firing, error) {
	text, payload := personSays(ev)
	for i := range p.Rules.Escalate {
		es := &p.Rules.Escalate[i]
		why, ok := es.Match.Match(text, payload)
		if !ok || e.d.Topology.App(es.To).ID == th.Owner {
			continue
		}
		if h := p.Rules.Hours; h != nil && !es.AnyTime && !h.Week.Open(now) {
			return e.holdEscalation(tx, p, th, fmt.Sprintf("escalation %s (%s) to %s held: outside business hours", es.Name, why, es.To), now)
		}
		md := es.Metadata
		if md == "" {
			md = fmt.Sprintf("escalation %s: %s", es.Name, why)
		}
		return Firing{Rule: RuleEscalate, Result: armedResult}, tx.PutJob(store.Job{ThreadKey: th.ThreadKey, Rule: RuleEscalate, At: now, Created: now,
			Target: es.To, Metadata: truncate(md, 1000), Reason: es.Name + ": " + why, Message: es.Message})
	}
	return Firing{}, nil
}

// personSays is the text a person typed and the payload of what they
// tapped.
func personSays(ev *messenger.Event) (text, payload string) {
	switch {
	case ev.Message != nil && !ev.Message.IsEcho:
		if ev.Message.QuickReply != nil {
			payload = ev.Message.QuickReply.Payload
		}
		return ev.Message.Text, payload
	case ev.Postback != nil:
		return "", ev.Postback.Payload
	}
	return "", ""
}

// runHandTo passes a thread the bot side holds to the rule's target
// (escalation and entry), saying the rule's message first.
func (e *Engine) runHandTo(ctx context.Context, p *topology.Page, j store.Job) jobOutcome {
	th, err := e.d.Threads.Current(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	target := e.d.Topology.App(j.Target)
	if target == nil || !holdsThread(p, th) || th.Owner == target.ID {
		return jobOutcome{result: skippedResult}
	}
	actor := e.actorFor(p, th)
	if actor == nil {
		return jobOutcome{result: failedResult, err: fmt.Errorf("no hosted app with a page token can pass the thread (owner %s)", e.d.Topology.Name(th.Owner))}
	}
	// Said once: a retry of the pass must not say it again.
	if j.Message != "" && j.Attempts == 0 {
		if err := e.sendText(ctx, p, actor, j.PSID, j.Message); err != nil {
			e.d.Errors.Record(recent.Error{Kind: "rule", App: actor.Name, Page: p.ID, PSID: j.PSID, Message: "escalation message not sent: " + err.Error()})
		}
	}
	_, err = e.d.Threads.Control(ctx, threads.Request{Page: p.ID, PSID: j.PSID, App: actor.Name, Op: statemachine.OpPass, Target: j.Target,
		Metadata: j.Metadata, Cause: store.CauseRule, By: "rule:" + j.Rule})
	return outcome(err)
}
