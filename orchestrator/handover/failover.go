package handover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// The failover rule: when the deliveries of the bot that answers a thread
// have failed for the rule's time, the thread goes to the rule's target
// (the Page Inbox, say); with back: true, the failback job returns it once
// the bot delivers again.

// NoteDeliveryFailure arms the failover rule when a bot that answers a
// person (the messaging channel) fails a delivery. It runs in the
// dispatcher's transaction; the job decides when it acts.
func (e *Engine) NoteDeliveryFailure(tx store.Tx, del *store.Delivery) error {
	p := e.d.Topology.Page(del.Page)
	if p == nil || p.Rules == nil || p.Rules.Failover == nil || del.PSID == "" || del.Channel != string(messenger.ChannelMessaging) {
		return nil
	}
	k := store.ThreadKey{Page: del.Page, PSID: del.PSID}
	if _, err := tx.Job(k, RuleFailover); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return tx.PutJob(store.Job{ThreadKey: k, Rule: RuleFailover, At: del.CreatedAt.Add(p.Rules.Failover.After), Created: e.d.Clock.Now(), App: del.App, Target: p.Rules.Failover.To})
}

// BotRecovered makes the failback jobs of app due now.
func (e *Engine) BotRecovered(app string) {
	now := e.d.Clock.Now()
	err := e.d.Store.Update(context.Background(), func(tx store.Tx) error {
		jobs, err := tx.Jobs(RuleFailback)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.App == app && j.At.After(now) {
				j.At = now
				if err := tx.PutJob(j); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		e.d.Log.Error("failback jobs not made due", zap.String("app", app), zap.Error(err))
	}
	e.d.Wake()
}

// runFailover moves a thread away from a bot whose deliveries have failed
// for the rule's time, and arms its failback.
func (e *Engine) runFailover(ctx context.Context, p *topology.Page, j store.Job) jobOutcome {
	fo := p.Rules.Failover
	failing := e.d.Topology.App(j.App)
	if fo == nil || failing == nil {
		return jobOutcome{result: skippedResult}
	}
	since, ok := e.d.Health.FailingSince(failing.Name)
	if !ok {
		return jobOutcome{result: skippedResult} // the bot recovered
	}
	now := e.d.Clock.Now()
	if due := since.Add(fo.After); due.After(now) {
		return jobOutcome{rearm: due}
	}
	th, err := e.d.Threads.Current(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	// The failing bot answers the thread when it owns it, or when the
	// thread is idle and it is the default app.
	if th.Owner != failing.ID && !(th.Owner == "" && failing.ID == p.SM.Primary && p.SM.Mode == statemachine.ConversationRouting) {
		return jobOutcome{result: skippedResult}
	}
	if p.Tokens[failing.Name] == "" {
		return jobOutcome{result: failedResult, err: fmt.Errorf("app %s has no page token to pass the thread", failing.Name)}
	}
	if fo.Message != "" && j.Attempts == 0 {
		// Sent while the failing app still owns the thread; afterwards
		// Meta would refuse it. Once: a retried pass does not say it again.
		if err := e.sendText(ctx, p, failing, j.PSID, fo.Message); err != nil {
			e.d.Errors.Record(recent.Error{Kind: "rule", App: failing.Name, Page: p.ID, PSID: j.PSID, Message: "failover message not sent: " + err.Error()})
		}
	}
	md := fmt.Sprintf("failover: deliveries to %s failing since %s", failing.Name, since.UTC().Format(time.RFC3339))
	_, err = e.d.Threads.Control(ctx, threads.Request{Page: p.ID, PSID: j.PSID, App: failing.Name, Op: statemachine.OpPass, Target: fo.To,
		Metadata: md, Cause: store.CauseRule, By: "rule:" + RuleFailover})
	res := outcome(err)
	if res.result != firedResult || !fo.Back {
		return res
	}
	err = e.d.Store.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutJob(store.Job{ThreadKey: j.ThreadKey, Rule: RuleFailback, At: now.Add(fo.After), Created: now, App: failing.Name, Target: fo.To})
	})
	if err != nil {
		e.d.Errors.Record(recent.Error{Kind: "rule", App: failing.Name, Page: p.ID, PSID: j.PSID, Message: "failback not armed: " + err.Error()})
	}
	return res
}

// runFailback gives a failed-over thread back to its bot once the bot
// delivers again; until then it looks again every failover.after.
func (e *Engine) runFailback(ctx context.Context, p *topology.Page, j store.Job) jobOutcome {
	fo := p.Rules.Failover
	bot, fallback := e.d.Topology.App(j.App), e.d.Topology.App(j.Target)
	if fo == nil || bot == nil || fallback == nil {
		return jobOutcome{result: skippedResult}
	}
	th, err := e.d.Threads.Current(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	if th.Owner != fallback.ID {
		return jobOutcome{result: skippedResult} // a person already handed it on
	}
	if !e.d.Health.Recovered(bot.Name, j.Created) {
		return jobOutcome{rearm: e.d.Clock.Now().Add(fo.After)}
	}
	req := threads.Request{Page: p.ID, PSID: j.PSID, Metadata: "failback: " + bot.Name + " delivers again", Cause: store.CauseRule, By: "rule:" + RuleFailback}
	if p.CanAct(fallback) {
		req.App, req.Op, req.Target = fallback.Name, statemachine.OpPass, bot.Name
	} else {
		req.App, req.Op = bot.Name, statemachine.OpTake
	}
	_, err = e.d.Threads.Control(ctx, req)
	return outcome(err)
}
