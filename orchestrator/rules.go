package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// Handover rules. A rule decides in the ingress transaction (or in the
// dispatcher's) and writes a job, durable with the event that armed it;
// the job runner makes the Graph calls. A restart finds the job and runs
// it; a job whose work Meta already did is refused by the state machine
// and dropped, so nothing runs twice.

// Rule names: a job's Rule, the metric's label, the history's "by".
const (
	ruleEscalate = "escalate"
	ruleHours    = "hours"
	ruleEntry    = "entry"
	ruleRequests = "requests"
	ruleReturn   = "return"
	ruleFailover = "failover"
	ruleFailback = "failback"
)

var allRules = []string{ruleEscalate, ruleHours, ruleEntry, ruleRequests, ruleReturn, ruleFailover, ruleFailback}

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

type firing struct{ rule, result string }

func (o *Orchestrator) countFirings(fs []firing) {
	for _, f := range fs {
		o.metrics.rules.WithLabelValues(f.rule, f.result).Inc()
	}
}

// holdsThread reports whether the bot side has the thread: idle, or the
// primary. Escalation and entry rules move threads only from there; they
// never take a conversation from a human.
func holdsThread(p *page, th store.Thread) bool {
	return th.Owner == "" || th.Owner == p.sm.Primary
}

// routeRules arms the jobs a person's event or a handover event calls for.
// It runs inside the ingress transaction, once per event (duplicates and
// the other apps' copies are dropped before).
func (o *Orchestrator) routeRules(tx store.Tx, p *page, rcv *app, ev *messenger.Event, th *store.Thread, now time.Time, out *routed) error {
	r := p.rules
	if r == nil {
		return nil
	}
	k := th.ThreadKey
	switch kind := ev.Kind(); kind {
	case messenger.KindMessage, messenger.KindPostback, messenger.KindReferral:
		if !holdsThread(p, *th) || (kind == messenger.KindPostback && ev.Postback.Payload == "") {
			return nil // a postback's standby copy has no payload: its owner's copy decides
		}
		if ref := referralOf(ev); ref != nil {
			for _, e := range r.Entry {
				if !entryMatches(e, ref) || o.apps[e.To].id == th.Owner {
					continue
				}
				md := e.Metadata
				if md == "" {
					md = fmt.Sprintf("entry: referral %s %s", ref.Source, ref.Ref)
				}
				out.firings = append(out.firings, firing{ruleEntry, armedResult})
				return tx.PutJob(store.Job{ThreadKey: k, Rule: ruleEntry, At: now, Created: now, Target: e.To, Metadata: truncate(md, 1000), Reason: "referral " + ref.Source + " " + ref.Ref})
			}
		}
		text, payload := personSays(ev)
		for i := range r.Escalate {
			e := &r.Escalate[i]
			why, ok := e.Match.Match(text, payload)
			if !ok || o.apps[e.To].id == th.Owner {
				continue
			}
			if h := r.Hours; h != nil && !e.AnyTime && !h.Week.Open(now) {
				out.firings = append(out.firings, firing{ruleEscalate, heldResult})
				reason := fmt.Sprintf("escalation %s (%s) to %s held: outside business hours", e.Name, why, e.To)
				if err := tx.AppendHistory(k, store.HistoryEntry{At: now, Event: "rule_" + ruleHours, From: th.Owner, To: th.Owner,
					By: "rule:" + ruleHours, Cause: store.CauseRule, Metadata: reason}); err != nil {
					return err
				}
				if h.ClosedMessage == "" {
					return nil
				}
				return tx.PutJob(store.Job{ThreadKey: k, Rule: ruleHours, At: now, Created: now, Reason: reason})
			}
			md := e.Metadata
			if md == "" {
				md = fmt.Sprintf("escalation %s: %s", e.Name, why)
			}
			out.firings = append(out.firings, firing{ruleEscalate, armedResult})
			return tx.PutJob(store.Job{ThreadKey: k, Rule: ruleEscalate, At: now, Created: now, Target: e.To, Metadata: truncate(md, 1000), Reason: e.Name + ": " + why, Message: e.Message})
		}
	case messenger.KindRequestThreadControl:
		rq := r.Requests
		if rq == nil || rq.Policy == config.RequestsAsk || th.Owner != rcv.id {
			return nil
		}
		requester := o.appsByID[string(ev.RequestThreadControl.RequestedOwnerAppID)]
		if requester == nil || !p.hasApp(requester.id) {
			out.unusable = append(out.unusable, RecentError{Kind: "rule", App: rcv.name, Page: p.id, PSID: k.PSID,
				Message: fmt.Sprintf("request_thread_control from app %s, which is not on the page in the config: left to the bot", ev.RequestThreadControl.RequestedOwnerAppID)})
			return nil
		}
		approve := rq.Policy == config.RequestsApprove
		if rq.Policy == config.RequestsApproveIfIdle {
			if now.Sub(th.OwnerActiveAt) < rq.Idle {
				return nil // the owner is active: its bot decides
			}
			approve = true
		}
		if !approve {
			out.firings = append(out.firings, firing{ruleRequests, refusedResult})
			return tx.AppendHistory(k, store.HistoryEntry{At: now, Event: "rule_" + ruleRequests, From: th.Owner, To: th.Owner,
				By: "rule:" + ruleRequests, Cause: store.CauseRule, Metadata: fmt.Sprintf("request from %s refused by policy", requester.name)})
		}
		out.firings = append(out.firings, firing{ruleRequests, armedResult})
		return tx.PutJob(store.Job{ThreadKey: k, Rule: ruleRequests, At: now, Created: now, App: rcv.name, Target: requester.name,
			Metadata: truncate(ev.RequestThreadControl.Metadata, 1000), Reason: fmt.Sprintf("request from %s approved (%s)", requester.name, rq.Policy)})
	}
	return nil
}

// afterTransition keeps the return timer in step with the owner: armed
// when a secondary gets the thread, dropped when it leaves one.
func (o *Orchestrator) afterTransition(tx store.Tx, p *page, th *store.Thread, now time.Time) error {
	th.ActiveAt, th.OwnerActiveAt = now, now // getting control counts as activity
	if p.rules == nil || p.rules.Return == nil {
		return nil
	}
	if th.Owner == "" || th.Owner == p.sm.Primary {
		return tx.DeleteJob(th.ThreadKey, ruleReturn)
	}
	return tx.PutJob(store.Job{ThreadKey: th.ThreadKey, Rule: ruleReturn, At: now.Add(p.rules.Return.After), Created: now})
}

// noteDeliveryFailure arms the failover rule when a bot that answers a
// person (the messaging channel) fails a delivery. It runs in the
// dispatcher's transaction; the job decides when it runs.
func (o *Orchestrator) noteDeliveryFailure(tx store.Tx, del *store.Delivery) error {
	p := o.pages[del.Page]
	if p == nil || p.rules == nil || p.rules.Failover == nil || del.PSID == "" || del.Channel != string(messenger.ChannelMessaging) {
		return nil
	}
	k := store.ThreadKey{Page: del.Page, PSID: del.PSID}
	if _, err := tx.Job(k, ruleFailover); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return tx.PutJob(store.Job{ThreadKey: k, Rule: ruleFailover, At: del.CreatedAt.Add(p.rules.Failover.After), Created: o.clock.Now(), App: del.App, Target: p.rules.Failover.To})
}

// botRecovered makes the failback jobs of app due now.
func (o *Orchestrator) botRecovered(appName string) {
	now := o.clock.Now()
	err := o.store.Update(context.Background(), func(tx store.Tx) error {
		jobs, err := tx.Jobs(ruleFailback)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.App == appName && j.At.After(now) {
				j.At = now
				if err := tx.PutJob(j); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		o.log.Error("failback jobs not made due", zap.String("app", appName), zap.Error(err))
	}
	o.notifyTimers()
}

func referralOf(ev *messenger.Event) *messenger.Referral {
	switch {
	case ev.Referral != nil:
		return ev.Referral
	case ev.Postback != nil && ev.Postback.Referral != nil:
		return ev.Postback.Referral
	case ev.Message != nil && ev.Message.Referral != nil:
		return ev.Message.Referral
	}
	return nil
}

func entryMatches(e config.Entry, ref *messenger.Referral) bool {
	return (e.Ref == "" || e.Ref == ref.Ref) && (e.Source == "" || e.Source == ref.Source) && (e.AdID == "" || e.AdID == string(ref.AdID))
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

// --- the job runner ---

// jobOutcome is what running a job decided.
type jobOutcome struct {
	result string
	rearm  time.Time // non-zero: run again then
	err    error
}

// runJobs runs due jobs, several at once (each may wait on Meta), each
// job once at a time, until ctx ends.
func (o *Orchestrator) runJobs(ctx context.Context) {
	const parallel = 8
	sem := make(chan struct{}, parallel)
	inflight := map[string]bool{}
	doneCh := make(chan string, parallel)
	for {
		now := o.clock.Now()
		var due []store.Job
		if err := o.store.View(func(tx store.ReadTx) error {
			var err error
			due, err = tx.DueJobs(now, 64)
			return err
		}); err != nil {
			o.log.Error("read due jobs", zap.Error(err))
		}
		for _, j := range due {
			id := j.Rule + "|" + j.ThreadKey.String()
			if inflight[id] {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // all runners busy: the next pass takes it
			}
			inflight[id] = true
			go func() {
				defer func() { <-sem; doneCh <- id }()
				o.runJob(ctx, j)
			}()
		}
		deadline := now.Add(time.Minute)
		var next time.Time
		var ok bool
		_ = o.store.View(func(tx store.ReadTx) error {
			var err error
			next, ok, err = tx.NextJob()
			return err
		})
		if ok && next.After(now) && next.Before(deadline) {
			deadline = next
		}
		if ok && !next.After(now) && len(inflight) == 0 {
			continue // due jobs beyond the 64 just read
		}
		select {
		case <-ctx.Done():
			for len(inflight) > 0 {
				delete(inflight, <-doneCh)
			}
			return
		case id := <-doneCh:
			delete(inflight, id)
		case <-o.jobWake:
		case <-clock.At(o.clock, deadline):
		}
	}
}

// runJob runs one job and then removes it, or moves it to its next time,
// unless the rule replaced it meanwhile.
func (o *Orchestrator) runJob(ctx context.Context, j store.Job) {
	var out jobOutcome
	p := o.pages[j.Page]
	if p == nil || p.rules == nil {
		out = jobOutcome{result: skippedResult} // the page or its rules left the config
	} else {
		switch j.Rule {
		case ruleEscalate, ruleEntry:
			out = o.runHandTo(ctx, p, j)
		case ruleHours:
			out = o.runClosedMessage(ctx, p, j)
		case ruleRequests:
			out = o.runApprove(ctx, p, j)
		case ruleReturn:
			out = o.runReturn(ctx, p, j)
		case ruleFailover:
			out = o.runFailover(ctx, p, j)
		case ruleFailback:
			out = o.runFailback(ctx, p, j)
		default:
			out = jobOutcome{result: skippedResult, err: fmt.Errorf("unknown rule %q", j.Rule)}
		}
	}
	if out.err != nil && ctx.Err() != nil {
		return // shutting down: the job stays and runs at the next start
	}
	if out.err != nil {
		o.recordError(RecentError{Kind: "rule", App: j.App, Page: j.Page, PSID: j.PSID, Message: fmt.Sprintf("rule %s: %v", j.Rule, out.err)})
		if out.result == "" && j.Attempts+1 < jobMaxAttempts {
			out.rearm = o.clock.Now().Add(o.dispatcher.backoff(j.Attempts + 1))
			j.Attempts++
		} else if out.result == "" {
			out.result = failedResult
		}
	}
	if out.result != "" {
		o.metrics.rules.WithLabelValues(j.Rule, out.result).Inc()
	}
	err := o.store.Update(context.Background(), func(tx store.Tx) error {
		cur, err := tx.Job(j.ThreadKey, j.Rule)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !cur.Created.Equal(j.Created)) {
			return nil // replaced while it ran: the new one stands
		}
		if err != nil {
			return err
		}
		if out.rearm.IsZero() {
			return tx.DeleteJob(j.ThreadKey, j.Rule)
		}
		j.At = out.rearm
		return tx.PutJob(j)
	})
	if err != nil {
		o.log.Error("job not updated; it runs again", zap.String("rule", j.Rule), zap.String("thread", j.ThreadKey.String()), zap.Error(err))
	}
}

// retryable: a job's Graph call failed in a way a later run may fix.
func retryable(err error) bool {
	return messenger.IsTransient(err) || messenger.IsUncertain(err) || messenger.IsRateLimited(err)
}

// outcome turns a control call's error into a job outcome: a refusal by
// the state machine means the thread moved on (or a run before a crash
// already did the work).
func outcome(err error) jobOutcome {
	switch {
	case err == nil:
		return jobOutcome{result: firedResult}
	case isRefusal(err):
		return jobOutcome{result: skippedResult}
	case retryable(err):
		return jobOutcome{err: err}
	}
	return jobOutcome{result: failedResult, err: err}
}

func (o *Orchestrator) thread(p *page, k store.ThreadKey) (store.Thread, error) {
	var th store.Thread
	err := o.store.View(func(tx store.ReadTx) error {
		var err error
		th, err = o.loadThread(tx, p, k)
		return err
	})
	if err == nil && statemachine.Expired(p.sm, th.Thread, o.clock.Now()) {
		th.Thread, _ = applyQuiet(p, th.Thread, statemachine.Input{Op: statemachine.OpExpire, At: o.clock.Now()})
	}
	return th, err
}

// actorFor is the hosted app that acts for the bot side of a thread: its
// owner when Baton hosts it, else (idle) the primary, else any hosted app
// with a token on the page (zero-config).
func (o *Orchestrator) actorFor(p *page, th store.Thread) *app {
	if a := o.appsByID[th.Owner]; a != nil && a.hosted && p.tokens[a.name] != "" {
		return a
	}
	if th.Owner != "" {
		return nil
	}
	for _, a := range p.apps { // primary first
		if a.hosted && p.tokens[a.name] != "" {
			return a
		}
	}
	return nil
}

// runHandTo passes a thread the bot side holds to the rule's target.
func (o *Orchestrator) runHandTo(ctx context.Context, p *page, j store.Job) jobOutcome {
	th, err := o.thread(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	target := o.apps[j.Target]
	if target == nil || !holdsThread(p, th) || th.Owner == target.id {
		return jobOutcome{result: skippedResult}
	}
	actor := o.actorFor(p, th)
	if actor == nil {
		return jobOutcome{result: failedResult, err: fmt.Errorf("no hosted app with a page token can pass the thread (owner %s)", o.appName(th.Owner))}
	}
	// Said once: a retry of the pass must not say it again.
	if j.Message != "" && j.Attempts == 0 {
		if err := o.sendText(ctx, p, actor, j.PSID, j.Message); err != nil {
			o.recordError(RecentError{Kind: "rule", App: actor.name, Page: p.id, PSID: j.PSID, Message: "escalation message not sent: " + err.Error()})
		}
	}
	_, err = o.control(ctx, controlRequest{Page: p.id, PSID: j.PSID, App: actor.name, Op: statemachine.OpPass, Target: j.Target,
		Metadata: j.Metadata, Cause: store.CauseRule, By: "rule:" + j.Rule})
	return outcome(err)
}

// runApprove passes the thread from its owner to the app that asked.
func (o *Orchestrator) runApprove(ctx context.Context, p *page, j store.Job) jobOutcome {
	owner := o.apps[j.App]
	th, err := o.thread(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	if owner == nil || th.Owner != owner.id {
		return jobOutcome{result: skippedResult}
	}
	_, err = o.control(ctx, controlRequest{Page: p.id, PSID: j.PSID, App: owner.name, Op: statemachine.OpPass, Target: j.Target,
		Metadata: j.Metadata, Cause: store.CauseRule, By: "rule:" + ruleRequests})
	return outcome(err)
}

// runClosedMessage tells the person that nobody is there now.
func (o *Orchestrator) runClosedMessage(ctx context.Context, p *page, j store.Job) jobOutcome {
	h := p.rules.Hours
	if h == nil || h.ClosedMessage == "" {
		return jobOutcome{result: skippedResult}
	}
	th, err := o.thread(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	actor := o.actorFor(p, th)
	if actor == nil {
		return jobOutcome{result: skippedResult}
	}
	if err := o.sendText(ctx, p, actor, j.PSID, h.ClosedMessage); err != nil {
		return outcome(err)
	}
	return jobOutcome{result: firedResult}
}

// runReturn gives control back from a secondary that has been quiet for
// the rule's time, or moves the timer to the last activity.
func (o *Orchestrator) runReturn(ctx context.Context, p *page, j store.Job) jobOutcome {
	rt := p.rules.Return
	if rt == nil {
		return jobOutcome{result: skippedResult}
	}
	th, err := o.thread(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	if holdsThread(p, th) {
		return jobOutcome{result: skippedResult}
	}
	now := o.clock.Now()
	if due := th.ActiveAt.Add(rt.After); due.After(now) {
		return jobOutcome{rearm: due} // something happened since: wait from there
	}
	primary := o.apps[p.primary]
	owner := o.appsByID[th.Owner]
	md := fmt.Sprintf("return: no activity for %s", rt.After)
	req := controlRequest{Page: p.id, PSID: j.PSID, Metadata: md, Cause: store.CauseRule, By: "rule:" + ruleReturn}
	ownerActs := owner != nil && owner.hosted && p.tokens[owner.name] != ""
	switch {
	case ownerActs && rt.To == config.ReturnPrimary:
		req.App, req.Op, req.Target = owner.name, statemachine.OpPass, p.primary
	case ownerActs:
		req.App, req.Op = owner.name, statemachine.OpRelease
	default: // an external owner (Page Inbox): the primary takes
		req.App, req.Op = primary.name, statemachine.OpTake
	}
	if _, err := o.control(ctx, req); err != nil {
		return outcome(err)
	}
	if !ownerActs && rt.To == config.ReturnIdle {
		req.App, req.Op = primary.name, statemachine.OpRelease
		if _, err := o.control(ctx, req); err != nil {
			return outcome(err)
		}
	}
	if rt.Message != "" {
		if err := o.sendText(ctx, p, primary, j.PSID, rt.Message); err != nil {
			o.recordError(RecentError{Kind: "rule", App: primary.name, Page: p.id, PSID: j.PSID, Message: "return message not sent: " + err.Error()})
		}
	}
	return jobOutcome{result: firedResult}
}

// runFailover moves a thread away from a bot whose deliveries have failed
// for the rule's time, and arms its failback.
func (o *Orchestrator) runFailover(ctx context.Context, p *page, j store.Job) jobOutcome {
	fo := p.rules.Failover
	failing := o.apps[j.App]
	if fo == nil || failing == nil {
		return jobOutcome{result: skippedResult}
	}
	since, ok := o.dispatcher.failingSince(failing.name)
	if !ok {
		return jobOutcome{result: skippedResult} // the bot recovered
	}
	now := o.clock.Now()
	if due := since.Add(fo.After); due.After(now) {
		return jobOutcome{rearm: due}
	}
	th, err := o.thread(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	// The failing bot answers the thread when it owns it, or when the
	// thread is idle and it is the default app.
	if th.Owner != failing.id && !(th.Owner == "" && failing.id == p.sm.Primary && p.sm.Mode == statemachine.ConversationRouting) {
		return jobOutcome{result: skippedResult}
	}
	if p.tokens[failing.name] == "" {
		return jobOutcome{result: failedResult, err: fmt.Errorf("app %s has no page token to pass the thread", failing.name)}
	}
	if fo.Message != "" {
		// Sent while the failing app still owns the thread; afterwards
		// Meta would refuse it.
		if err := o.sendText(ctx, p, failing, j.PSID, fo.Message); err != nil {
			o.recordError(RecentError{Kind: "rule", App: failing.name, Page: p.id, PSID: j.PSID, Message: "failover message not sent: " + err.Error()})
		}
	}
	md := fmt.Sprintf("failover: deliveries to %s failing since %s", failing.name, since.UTC().Format(time.RFC3339))
	_, err = o.control(ctx, controlRequest{Page: p.id, PSID: j.PSID, App: failing.name, Op: statemachine.OpPass, Target: fo.To,
		Metadata: md, Cause: store.CauseRule, By: "rule:" + ruleFailover})
	res := outcome(err)
	if res.result != firedResult || !fo.Back {
		return res
	}
	err = o.store.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutJob(store.Job{ThreadKey: j.ThreadKey, Rule: ruleFailback, At: now.Add(fo.After), Created: now, App: failing.name, Target: fo.To})
	})
	if err != nil {
		o.recordError(RecentError{Kind: "rule", App: failing.name, Page: p.id, PSID: j.PSID, Message: "failback not armed: " + err.Error()})
	}
	return res
}

// runFailback gives a failed-over thread back to its bot once the bot
// delivers again; until then it looks again every failover.after.
func (o *Orchestrator) runFailback(ctx context.Context, p *page, j store.Job) jobOutcome {
	fo := p.rules.Failover
	bot, fallback := o.apps[j.App], o.apps[j.Target]
	if fo == nil || bot == nil || fallback == nil {
		return jobOutcome{result: skippedResult}
	}
	th, err := o.thread(p, j.ThreadKey)
	if err != nil {
		return jobOutcome{err: err}
	}
	if th.Owner != fallback.id {
		return jobOutcome{result: skippedResult} // a person already handed it on
	}
	if !o.dispatcher.recovered(bot.name, j.Created) {
		return jobOutcome{rearm: o.clock.Now().Add(fo.After)}
	}
	req := controlRequest{Page: p.id, PSID: j.PSID, Metadata: "failback: " + bot.name + " delivers again", Cause: store.CauseRule, By: "rule:" + ruleFailback}
	if fallback.hosted && p.tokens[fallback.name] != "" {
		req.App, req.Op, req.Target = fallback.name, statemachine.OpPass, bot.name
	} else {
		req.App, req.Op = bot.name, statemachine.OpTake
	}
	_, err = o.control(ctx, req)
	return outcome(err)
}

// sendText sends a text message to the person as app a.
func (o *Orchestrator) sendText(ctx context.Context, p *page, a *app, psid, text string) error {
	cred, ok := o.credentials(p, a)
	if !ok {
		return fmt.Errorf("app %s has no page token on page %s", a.name, p.id)
	}
	_, err := o.graph.Send(ctx, cred, &messenger.SendRequest{Recipient: messenger.Recipient{ID: messenger.ID(psid)}, MessagingType: "RESPONSE",
		Message: &messenger.OutgoingMessage{Text: text}})
	o.metrics.graphCalls.WithLabelValues("send", graphResult(err)).Inc()
	return err
}
