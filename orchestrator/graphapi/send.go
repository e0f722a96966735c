package graphapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// send checks a send against what Meta would refuse, then forwards it to
// Meta with the real page token: as JSON, or a multipart send (a file) as
// it came.
func (g *Endpoint) send(w http.ResponseWriter, c *call, p *topology.Page) {
	r, a, ps := c.r, c.app, c.ps
	var req messenger.SendRequest
	raw, _ := json.Marshal(withoutCredentials(ps))
	_ = json.Unmarshal(raw, &req) // query/form callers send objects as JSON text: parsed below
	if req.Message == nil && ps.String("message") != "" {
		_ = json.Unmarshal([]byte(ps.String("message")), &req.Message)
	}
	if req.Tag == "" {
		req.Tag = ps.String("tag")
	}
	rcpt, ok := ps.Recipient()
	if !ok {
		writeError(w, newError(http.StatusBadRequest, 100, 0, "(#100) The parameter recipient is required"))
		return
	}
	if rcpt.ID != "" && !messenger.ValidID(string(rcpt.ID)) {
		writeError(w, newError(http.StatusBadRequest, 100, messenger.SubcodeNoMatchingUser, "(#100) No matching user found"))
		return
	}
	// A send is its thread owner's to make, whatever it carries (a
	// message, a sender action, a pass of thread control): the policy and
	// the record it reads are the owner's.
	if g.d.Owns != nil && rcpt.ID != "" {
		if err := g.d.Owns(store.ThreadKey{Page: p.ID, PSID: string(rcpt.ID)}); err != nil {
			writeFailure(w, statemachine.OpTake, err)
			return
		}
	}
	var otn *store.OneTimeToken
	if req.Message != nil && (rcpt.ID != "" || rcpt.OneTimeNotifToken != "") {
		var err error
		otn, err = g.policy(r.Context(), p, a, rcpt, req.Tag)
		if _, ok := apierr.Shard(err); ok {
			writeFailure(w, statemachine.OpTake, err) // the owner's replica decides
			return
		}
		if err != nil {
			gerr := errorFor(statemachine.OpTake, err)
			g.d.Metrics.SendRefusals.WithLabelValues(a.Name, strconv.Itoa(gerr.Code)+"/"+strconv.Itoa(gerr.Subcode)).Inc()
			g.d.Errors.Record(recent.Error{Kind: "send_policy", App: a.Name, Page: p.ID, PSID: string(rcpt.ID), Message: gerr.Message})
			writeError(w, gerr)
			return
		}
	}
	out, q := &body{contentType: "application/json", data: raw}, url.Values{}
	if c.form != nil {
		q, out = c.outgoing()
	}
	status, answer, sent := g.proxy(w, r, p, a, "", "messages", q, out)
	if sent && status != http.StatusOK && rcpt.ID != "" && saysNotOwner(answer) {
		// Meta says another app owns the thread: Baton's record may be
		// wrong, whatever it said.
		g.d.Threads.ReconcileLater(store.ThreadKey{Page: p.ID, PSID: string(rcpt.ID)}, "Meta refused a send by "+a.Name+" (10/2018300)")
	}
	if sent && status == http.StatusOK && otn != nil {
		otn.UsedAt = g.d.Clock.Now()
		if err := g.d.Store.Update(context.Background(), func(tx store.Tx) error { return tx.PutOneTimeToken(*otn) }); err != nil {
			g.d.Errors.Record(recent.Error{Kind: "send_policy", App: a.Name, Page: p.ID, Message: "one-time token used but not recorded: " + err.Error()})
		}
	}
	if !sent || status != http.StatusOK || req.ThreadControl == nil || rcpt.ID == "" {
		return
	}
	// Meta sends no webhook for a release by send: record it ourselves,
	// whether or not the bot still waits.
	owner := ""
	if req.ThreadControl.ControlType == "pass" {
		owner = string(req.ThreadControl.AppID)
		if owner == "" {
			owner = p.SM.Primary
		}
	}
	g.recordObserved(context.WithoutCancel(r.Context()), p, store.ThreadKey{Page: p.ID, PSID: string(rcpt.ID)}, owner, "send_thread_control", a.Name)
}

// policy refuses, with Meta's error, what Meta would refuse: another app
// owns the thread, by Baton's record and Meta's answer to thread_owner
// (10/2018300; or take control first, if the app's send_policy says so and
// the page allows), a retired tag (100), a one-time notification token
// used before or older than a year (100). It returns the token to mark
// used once the send succeeds. Its error is Meta's (a *messenger.Error),
// a refusal of the take it made for the app, or a *store.NotOwnedError:
// the thread is another replica's to judge, and nothing was sent.
func (g *Endpoint) policy(ctx context.Context, p *topology.Page, a *topology.App, rcpt messenger.Recipient, tag string) (*store.OneTimeToken, error) {
	now := g.d.Clock.Now()
	bad := http.StatusBadRequest
	if messenger.IsRetiredTag(tag, now) {
		return nil, newError(bad, 100, 0, "(#100) Invalid parameter")
	}
	psid := string(rcpt.ID)
	var otn *store.OneTimeToken
	if tok := rcpt.OneTimeNotifToken; tok != "" {
		var t store.OneTimeToken
		err := g.d.Store.View(func(tx store.ReadTx) error {
			var err error
			t, err = tx.OneTimeToken(tok)
			return err
		})
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, nil // granted before Baton saw it: Meta decides
		case err != nil:
			return nil, nil
		case t.Page != p.ID || !t.UsedAt.IsZero() || now.Sub(t.Created) > 365*24*time.Hour:
			return nil, newError(bad, 100, 0, "(#100) Invalid one_time_notif_token")
		}
		otn, psid = &t, t.PSID
	}
	if psid == "" {
		return nil, nil
	}
	k := store.ThreadKey{Page: p.ID, PSID: psid}
	th, err := g.d.Threads.Current(p, k)
	if _, ok := apierr.Shard(err); ok {
		return nil, err
	}
	if err != nil {
		return nil, nil // cannot judge: let Meta decide
	}
	if notOwner(p, a, th.Owner) {
		// Baton's record may be behind Meta's: ask before refusing, and
		// let Meta decide when it cannot be asked.
		if err := g.d.Threads.Reconcile(ctx, k, "a send by "+a.Name+" that Baton's record would refuse"); err != nil {
			if _, ok := apierr.Shard(err); ok {
				return nil, err
			}
			return otn, nil
		}
		if th, err = g.d.Threads.Current(p, k); err != nil {
			if _, ok := apierr.Shard(err); ok {
				return nil, err
			}
			return otn, nil
		}
	}
	if notOwner(p, a, th.Owner) {
		if !a.TakeToSend || !p.SM.CanTake[a.ID] || p.SM.Mode != statemachine.ConversationRouting {
			return nil, newError(bad, messenger.CodePermission, messenger.SubcodeNotOwner, "(#10) Message failed to send because another app is controlling this thread now.")
		}
		if _, err := g.d.Threads.Control(ctx, threads.Request{Page: p.ID, PSID: psid, App: a.Name, Op: statemachine.OpTake,
			Metadata: "send_policy", Cause: store.CauseCall, By: a.Name}); err != nil {
			return nil, err // errorFor's, or another replica's to do
		}
	}
	// The messaging window is not checked here: Baton's view of it (the
	// person's last message it saw) can be shorter than Meta's (an ad
	// thread, a comment, a reaction), and Baton is never stricter than
	// Meta. Meta answers 10/2018278 itself.
	return otn, nil
}

// saysNotOwner reports whether Meta's answer is its not-owner error,
// matched by (code, subcode).
func saysNotOwner(body []byte) bool {
	var env messenger.ErrorEnvelope
	if json.Unmarshal(body, &env) != nil || env.Error == nil {
		return false
	}
	return messenger.IsNotOwner(env.Error)
}

// notOwner reports whether Meta would refuse a's send for the owner.
func notOwner(p *topology.Page, a *topology.App, owner string) bool {
	switch p.SM.Mode {
	case statemachine.ConversationRouting:
		return (owner != "" && owner != a.ID) || (owner == "" && a.ID != p.SM.Primary)
	case statemachine.ZeroConfig:
		return owner != "" && owner != a.ID
	}
	return false // legacy: either app may respond
}

// recordObserved records an owner Baton learned from its own successful
// call when Meta sends no webhook for it.
func (g *Endpoint) recordObserved(ctx context.Context, p *topology.Page, k store.ThreadKey, owner, event, by string) {
	err := g.d.Store.Update(ctx, func(tx store.Tx) error {
		th, err := threads.Load(tx, p, k)
		if err != nil {
			return err
		}
		before := th.Version
		now := g.d.Clock.Now()
		if err := g.d.Ledger.Apply(tx, p, &th, statemachine.Input{Op: statemachine.OpObserve, Target: owner, At: now},
			store.HistoryEntry{Event: event, By: by, Cause: store.CauseCall}); err != nil {
			return err
		}
		if th.Version == before {
			return nil
		}
		th.UpdatedAt = now
		return tx.PutThread(th)
	})
	if err != nil {
		g.d.Errors.Record(recent.Error{Kind: "graph", Page: k.Page, PSID: k.PSID, Message: "record send thread_control: " + err.Error()})
	}
}
