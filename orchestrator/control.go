package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// controlRequest is one thread-control action by a hosted app, from the
// bot API, a delivery's answer, the admin API or a rule.
type controlRequest struct {
	Page, PSID string
	App        string // acting app's name
	Op         statemachine.Op
	Target     string // pass: app name; empty for the default app
	Metadata   string
	Duration   time.Duration
	Cause      string
	By         string // who asked, for the history: the app name or "admin"
}

// control performs req: the state machine decides whether Meta would
// allow it, the intent is stored, the Graph call is made with the acting
// app's page token, and the result applied. When Meta disagrees with our
// record (10/2018300) or the outcome is unknown (a timeout), the thread is
// reconciled with GET thread_owner.
func (o *Orchestrator) control(ctx context.Context, req controlRequest) (store.Thread, error) {
	p := o.pages[req.Page]
	if p == nil {
		return store.Thread{}, errNotFound("page " + req.Page + " is not configured")
	}
	a := o.apps[req.App]
	if a == nil || !a.hosted {
		return store.Thread{}, errBadRequest(fmt.Sprintf("app %q is not a hosted app", req.App))
	}
	cred, ok := o.credentials(p, a)
	if !ok {
		return store.Thread{}, errBadRequest(fmt.Sprintf("app %s has no page token for page %s", a.name, p.id))
	}
	in := statemachine.Input{Op: req.Op, Caller: a.id, Duration: req.Duration}
	if req.Target != "" {
		t := o.apps[req.Target]
		if t == nil {
			return store.Thread{}, errBadRequest(fmt.Sprintf("target %q is not an app in the config", req.Target))
		}
		if !p.hasApp(t.id) {
			return store.Thread{}, errBadRequest(fmt.Sprintf("target %q is not on page %s", req.Target, p.id))
		}
		in.Target = t.id
	}
	k := store.ThreadKey{Page: p.id, PSID: req.PSID}
	unlock := o.locks.lock(k.String())
	defer unlock()

	// Check first: a call Meta would refuse is refused here, with the reason.
	var th store.Thread
	if err := o.store.View(func(tx store.ReadTx) error {
		var err error
		th, err = o.loadThread(tx, p, k)
		return err
	}); err != nil {
		return th, err
	}
	in.At = o.clock.Now()
	if statemachine.Expired(p.sm, th.Thread, in.At) {
		th.Thread, _ = applyQuiet(p, th.Thread, statemachine.Input{Op: statemachine.OpExpire, At: in.At})
	}
	if _, err := statemachine.Apply(p.sm, th.Thread, in); err != nil {
		return th, fmt.Errorf("%s thread %s: %w", req.Op, k, err)
	}
	intent := store.Intent{ThreadKey: k, App: a.id, Op: string(req.Op), Target: in.Target, By: req.By, Cause: req.Cause, Metadata: req.Metadata, At: in.At}
	if err := o.store.Update(ctx, func(tx store.Tx) error { return tx.PutIntent(intent) }); err != nil {
		return th, fmt.Errorf("record intent: %w", err)
	}

	err := o.callGraph(ctx, cred, req, in.Target)
	o.metrics.graphCalls.WithLabelValues(string(req.Op), graphResult(err)).Inc()
	if err != nil {
		o.recordError(RecentError{Kind: "graph", App: a.name, Page: p.id, PSID: req.PSID, Message: fmt.Sprintf("%s: %v", req.Op, err)})
		if messenger.IsNotOwner(err) || messenger.IsUncertain(err) || isOwnershipRefusal(err) {
			if rerr := o.reconcile(ctx, k, "Meta refused or did not answer a "+string(req.Op)); rerr != nil {
				o.log.Warn("reconcile failed", zap.String("thread", k.String()), zap.Error(rerr))
			}
		}
		if derr := o.store.Update(context.Background(), func(tx store.Tx) error { return tx.DeleteIntent(k) }); derr != nil {
			// Left behind, the intent is reconciled at the next start.
			o.log.Warn("intent not cleared", zap.String("thread", k.String()), zap.Error(derr))
		}
		return th, fmt.Errorf("%s thread %s: %w", req.Op, k, err)
	}

	// Meta applied it: record the same transition on the current record,
	// which a webhook may have moved meanwhile.
	var out store.Thread
	err = o.store.Update(context.Background(), func(tx store.Tx) error {
		cur, err := o.loadThread(tx, p, k)
		if err != nil {
			return err
		}
		now := o.clock.Now()
		in.At = now
		h := store.HistoryEntry{Event: string(req.Op), By: req.By, Cause: req.Cause, Metadata: req.Metadata}
		err = o.apply(tx, p, &cur, in, h)
		if err != nil && isRefusal(err) && req.Op != statemachine.OpExtend && req.Op != statemachine.OpRequest {
			// Our record moved on (a webhook landed first); Meta's answer
			// is the truth.
			target := in.Target
			switch {
			case req.Op == statemachine.OpTake:
				target = a.id
			case req.Op == statemachine.OpRelease:
				target = ""
			case req.Op == statemachine.OpPass && target == "":
				target = p.sm.Primary // passed to the default app
			}
			err = o.apply(tx, p, &cur, statemachine.Input{Op: statemachine.OpObserve, Target: target, At: now}, h)
		}
		if err != nil && !isRefusal(err) {
			return err
		}
		cur.UpdatedAt = now
		if err := tx.PutThread(cur); err != nil {
			return err
		}
		out = cur
		return tx.DeleteIntent(k)
	})
	o.notifyTimers()
	return out, err
}

func applyQuiet(p *page, th statemachine.Thread, in statemachine.Input) (statemachine.Thread, error) {
	res, err := statemachine.Apply(p.sm, th, in)
	return res.Thread, err
}

func graphResult(err error) string {
	var ge *messenger.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ge):
		return fmt.Sprintf("error_%d", ge.Code)
	}
	return "transport_error"
}

// isOwnershipRefusal matches Meta's "not the thread owner" answers to
// thread-control calls, which carry code 100 and no documented subcode.
func isOwnershipRefusal(err error) bool {
	var ge *messenger.Error
	if !errors.As(err, &ge) || ge.Code != messenger.CodeInvalidParameter {
		return false
	}
	switch ge.Message {
	case "(#100) calling app is not the thread owner", "(#100) Only the current thread owner can release", "(#100) Only the current thread owner can extend":
		return true
	}
	return ge.Subcode == 2534037
}

func (o *Orchestrator) callGraph(ctx context.Context, cred messenger.Credentials, req controlRequest, target string) error {
	psid := messenger.ID(req.PSID)
	switch req.Op {
	case statemachine.OpPass:
		return o.graph.PassThreadControl(ctx, cred, psid, messenger.ID(target), req.Metadata)
	case statemachine.OpTake:
		return o.graph.TakeThreadControl(ctx, cred, psid, req.Metadata)
	case statemachine.OpRequest:
		return o.graph.RequestThreadControl(ctx, cred, psid, req.Metadata)
	case statemachine.OpRelease:
		return o.graph.ReleaseThreadControl(ctx, cred, psid, req.Metadata)
	case statemachine.OpExtend:
		return o.graph.ExtendThreadControl(ctx, cred, psid, req.Duration)
	}
	return errBadRequest("unknown action " + string(req.Op))
}

// reconcile asks Meta who owns the thread, as the page's default app when
// Baton hosts it (the default app sees every owner), and records Meta's
// answer if ours differs.
func (o *Orchestrator) reconcile(ctx context.Context, k store.ThreadKey, why string) error {
	p := o.pages[k.Page]
	if p == nil {
		return errNotFound("page " + k.Page)
	}
	var asker *app
	for _, a := range p.apps { // primary first
		if _, ok := p.tokens[a.name]; ok && a.hosted {
			asker = a
			break
		}
	}
	if asker == nil {
		return fmt.Errorf("no hosted app with a token on page %s can ask thread_owner", p.id)
	}
	cred, _ := o.credentials(p, asker)
	to, err := o.graph.ThreadOwner(ctx, cred, messenger.ID(k.PSID))
	o.metrics.graphCalls.WithLabelValues("thread_owner", graphResult(err)).Inc()
	if err != nil {
		return fmt.Errorf("thread_owner %s: %w", k, err)
	}
	if !to.Idle && to.AppID == "" {
		return fmt.Errorf("thread_owner %s: Meta hides the owner from %s", k, asker.name)
	}
	return o.store.Update(ctx, func(tx store.Tx) error {
		th, err := o.loadThread(tx, p, k)
		if err != nil {
			return err
		}
		now := o.clock.Now()
		before := th.Version
		if err := o.apply(tx, p, &th, statemachine.Input{Op: statemachine.OpObserve, Target: string(to.AppID), At: now},
			store.HistoryEntry{Event: "thread_owner", By: "meta", Cause: store.CauseReconcile, Metadata: why}); err != nil {
			return err
		}
		if !to.Expires.IsZero() && th.Owner != "" {
			th.ExpiresAt = to.Expires
		}
		if th.Version == before && to.Expires.IsZero() {
			return nil
		}
		th.UpdatedAt = now
		return tx.PutThread(th)
	})
}

func (o *Orchestrator) reconcileLogged(k store.ThreadKey, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := o.reconcile(ctx, k, why); err != nil {
		o.recordError(RecentError{Kind: "reconcile", Page: k.Page, PSID: k.PSID, Message: err.Error()})
	}
}

// recoverIntents reconciles every thread whose thread-control call was cut
// short by a crash: whether Meta applied it is unknown.
func (o *Orchestrator) recoverIntents(ctx context.Context) error {
	var intents []store.Intent
	if err := o.store.View(func(tx store.ReadTx) error {
		var err error
		intents, err = tx.Intents()
		return err
	}); err != nil {
		return err
	}
	for _, in := range intents {
		if err := o.reconcile(ctx, in.ThreadKey, "a "+in.Op+" call was cut short by a restart"); err != nil {
			o.recordError(RecentError{Kind: "reconcile", Page: in.Page, PSID: in.PSID, Message: err.Error()})
		}
		if err := o.store.Update(ctx, func(tx store.Tx) error { return tx.DeleteIntent(in.ThreadKey) }); err != nil {
			return err
		}
	}
	return nil
}

// runActions performs what a bot asked for in its answer to a delivery.
func (o *Orchestrator) runActions(ctx context.Context, del *store.Delivery, actions []adapters.Action) {
	for _, act := range actions {
		req := controlRequest{Page: del.Page, PSID: del.PSID, App: del.App, Op: statemachine.Op(act.Type), Target: act.To,
			Metadata: act.Metadata, Cause: store.CauseCall, By: del.App}
		if act.Duration != "" {
			d, err := time.ParseDuration(act.Duration)
			if err != nil {
				o.recordError(RecentError{Kind: "action", App: del.App, Page: del.Page, PSID: del.PSID, Message: "extend duration: " + err.Error()})
				continue
			}
			req.Duration = d
		}
		switch req.Op {
		case statemachine.OpPass, statemachine.OpTake, statemachine.OpRequest, statemachine.OpRelease, statemachine.OpExtend:
		default:
			o.recordError(RecentError{Kind: "action", App: del.App, Page: del.Page, PSID: del.PSID, Message: fmt.Sprintf("unknown action type %q", act.Type)})
			continue
		}
		if del.PSID == "" {
			continue
		}
		if _, err := o.control(ctx, req); err != nil {
			o.recordError(RecentError{Kind: "action", App: del.App, Page: del.Page, PSID: del.PSID, Message: err.Error()})
		}
	}
}

func asAdapterError(err error, target **adapters.Error) bool { return errors.As(err, target) }
