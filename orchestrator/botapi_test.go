package orchestrator_test

import (
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/api"
)

func TestBotAPI(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	url := h.baton + "/v1/threads/" + pageID + "/" + psid
	var tv api.ThreadView
	var apiErr struct {
		Error struct{ Code, Message string }
	}

	// Refused by the state machine before Meta is called: 409 with why.
	if st := h.do("POST", url+"/take", env["BILLING_API"], nil, &apiErr); st != 409 || apiErr.Error.Code != "refused" {
		t.Fatalf("take without permission: %d %+v", st, apiErr)
	}
	if st := h.do("POST", url+"/request", env["SUPPORT_API"], nil, &apiErr); st != 409 {
		t.Fatalf("request on a Conversation Routing page: %d", st)
	}
	// Bad input: 400.
	if st := h.do("POST", url+"/pass", env["SUPPORT_API"], map[string]string{"to": "nobody"}, &apiErr); st != 400 {
		t.Fatalf("pass to unknown app: %d", st)
	}
	if st := h.do("POST", url+"/pass", env["SUPPORT_API"], map[string]string{"too": "x"}, &apiErr); st != 400 {
		t.Fatalf("unknown key: %d", st)
	}
	// Take, extend, read.
	if st := h.do("POST", url+"/take", env["SUPPORT_API"], map[string]string{"metadata": "mine"}, &tv); st != 200 || tv.Owner != "support-bot" {
		t.Fatalf("take: %d %+v", st, tv)
	}
	if st := h.do("POST", url+"/extend", env["SUPPORT_API"], map[string]string{"duration": "72h"}, &tv); st != 200 || tv.ExpiresAt.Sub(h.clock.Now()).Hours() != 72 {
		t.Fatalf("extend: %d %+v", st, tv)
	}
	if st := h.do("GET", url, env["BILLING_API"], nil, &tv); st != 200 || len(tv.History) == 0 {
		t.Fatalf("get: %d %+v", st, tv)
	}
	if st, _ := h.platform.Thread(pageID, psid); st.ExpiresAt == nil || !st.ExpiresAt.Equal(*tv.ExpiresAt) {
		t.Fatalf("platform expiry %v, baton %v", st.ExpiresAt, tv.ExpiresAt)
	}

	// The threads an app owns on one of its pages; another app's owner
	// filter reads that app's; a page the app is not on is refused.
	var list struct {
		Threads []api.ThreadView `json:"threads"`
	}
	if st := h.do("GET", h.baton+"/v1/threads?page="+pageID, env["SUPPORT_API"], nil, &list); st != 200 || len(list.Threads) != 1 || list.Threads[0].PSID != psid {
		t.Fatalf("own threads: %d %+v", st, list)
	}
	list.Threads = nil
	if st := h.do("GET", h.baton+"/v1/threads?page="+pageID, env["BILLING_API"], nil, &list); st != 200 || len(list.Threads) != 0 {
		t.Fatalf("billing-bot owns none: %d %+v", st, list)
	}
	if st := h.do("GET", h.baton+"/v1/threads", env["SUPPORT_API"], nil, &apiErr); st != 400 {
		t.Fatalf("no page: %d", st)
	}
	if st := h.do("GET", h.baton+"/v1/threads?page=999999999", env["SUPPORT_API"], nil, &apiErr); st != 403 {
		t.Fatalf("a page the app is not on: %d", st)
	}
}

// When Meta refuses because Baton's record is stale, Baton asks
// thread_owner and records Meta's truth.
func TestStaleOwnerIsReconciled(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	// The default app passes to the inbox behind Baton's back: the webhook
	// goes to the inbox, which Baton does not host.
	g, _ := messenger.NewClient(messenger.ClientOptions{BaseURL: h.platURL})
	if err := g.PassThreadControl(context.Background(), messenger.Credentials{AccessToken: "PT_SUPPORT"}, psid, inboxID, ""); err != nil {
		t.Fatal(err)
	}
	if tv := h.batonThread(); tv.Owner != "" {
		t.Fatalf("baton already knew: %+v", tv)
	}
	var apiErr map[string]any
	st := h.do("POST", h.baton+"/v1/threads/"+pageID+"/"+psid+"/pass", env["BILLING_API"], map[string]string{"to": "support-bot"}, &apiErr)
	if st != 502 {
		t.Fatalf("pass on a stale record: %d %v (want Meta's refusal, 502)", st, apiErr)
	}
	tv := h.batonThread()
	if tv.Owner != "page-inbox" {
		t.Fatalf("not reconciled: %+v", tv)
	}
	if last := tv.History[len(tv.History)-1]; last.Cause != "reconcile" || last.To != "page-inbox" {
		t.Fatalf("history %+v", tv.History)
	}
	if errs := h.recentErrors(); len(errs) == 0 || errs[0].Kind != "graph" {
		t.Fatalf("recent errors %+v", errs)
	}
}

// An owner's activity holds the return rule: past the return time it does
// not fire while held; released, it fires. Only the owner may hold.
func TestBotAPIActivityHoldsTheReturn(t *testing.T) {
	h := newHarness(t, withRules(`
escalate:
  - words: [human]
    to: billing-bot
return: {after: 10m, to: primary}`))
	h.say("human")
	h.support.next()
	h.eventually("escalation", func() bool { return h.platformOwner() == billingID })
	h.eventually("the return timer", func() bool { _, ok := h.pending("return"); return ok })
	url := h.baton + "/v1/threads/" + pageID + "/" + psid + "/activity"
	var apiErr struct {
		Error struct{ Code, Message string }
	}
	if st := h.do("POST", url, env["SUPPORT_API"], map[string]string{"kind": "claimed", "agent": "anna"}, &apiErr); st != 409 || apiErr.Error.Code != "refused" {
		t.Fatalf("a hold by an app that does not own the thread: %d %+v", st, apiErr)
	}
	if st := h.do("POST", url, env["BILLING_API"], map[string]string{"kind": "sleeping"}, &apiErr); st != 400 {
		t.Fatalf("unknown kind: %d %+v", st, apiErr)
	}
	var tv api.ThreadView
	if st := h.do("POST", url, env["BILLING_API"], map[string]string{"kind": "typing", "agent": "anna", "for": "30m"}, &tv); st != 200 ||
		tv.HeldBy != "anna" || tv.HoldUntil == nil || !tv.HoldUntil.Equal(h.clock.Now().Add(30*time.Minute)) {
		t.Fatalf("typing: %d %+v", st, tv)
	}
	if j, ok := h.pending("return"); !ok || !j.At.Equal(*tv.HoldUntil) {
		t.Fatalf("the return job %+v, want it at the hold's end %s", j, tv.HoldUntil)
	}
	h.clock.Advance(11 * time.Minute) // past the return time
	h.settle()
	if h.platformOwner() != billingID {
		t.Fatal("returned while held")
	}
	var released api.ThreadView
	if st := h.do("POST", url, env["BILLING_API"], map[string]string{"kind": "released", "agent": "anna"}, &released); st != 200 || released.HoldUntil != nil {
		t.Fatalf("released: %d %+v", st, released)
	}
	h.eventually("the return once released", func() bool { return h.platformOwner() == supportID })
}
