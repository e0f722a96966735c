package orchestrator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/api"
)

// ms is a Meta timestamp d after the harness clock's start.
func (h *harness) ms(d time.Duration) int64 { return h.clock.Now().Add(d).UnixMilli() }

func messageCopy(ch messenger.Channel, mid, text string, ts int64) []byte {
	return []byte(fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":%d,"%s":[{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,"message":{"mid":"%s","text":"%s"}}]}]}`,
		pageID, ts, ch, psid, pageID, ts, mid, text))
}

func passItem(to string, ts int64) string {
	return fmt.Sprintf(`{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,"pass_thread_control":{"previous_owner_app_id":null,"new_owner_app_id":"%s","metadata":"m%d"}}`,
		psid, pageID, ts, to, ts)
}

func entries(items ...string) []byte {
	var es []string
	for _, it := range items {
		es = append(es, fmt.Sprintf(`{"id":"%s","time":1,"messaging":[%s]}`, pageID, it))
	}
	return []byte(`{"object":"page","entry":[` + strings.Join(es, ",") + `]}`)
}

// Meta decides routing: each hosted app's copy of a message reaches that
// app's bot on the channel Meta used for it, whatever Baton's record said,
// and the copies' evidence is merged into the one record.
func TestEachCopyOnMetasChannel(t *testing.T) {
	h := newHarness(t)
	// Baton's record: idle, so the default app (support-bot) would answer.
	// Meta routed the person's message to billing-bot (social routing):
	// billing's copy on messaging, support's on standby, no handover.
	ts := h.ms(-time.Second)
	if st, _ := h.post("billing-bot", env["BILLING_SECRET"], messageCopy(messenger.ChannelMessaging, "m_social", "hello", ts)); st != 200 {
		t.Fatalf("billing's copy: %d", st)
	}
	if st, _ := h.post("support-bot", env["SUPPORT_SECRET"], messageCopy(messenger.ChannelStandby, "m_social", "hello", ts)); st != 200 {
		t.Fatalf("support's copy: %d", st)
	}
	if d := h.billing.next(); d.Channel != "messaging" || text(d) != "hello" {
		t.Fatalf("billing got %s %q", d.Channel, text(d))
	}
	if d := h.support.next(); d.Channel != "standby" || text(d) != "hello" {
		t.Fatalf("support got %s %q", d.Channel, text(d))
	}
	if tv := h.batonThread(); tv.Owner != "billing-bot" {
		t.Fatalf("owner %q, want billing-bot (its copy came on messaging)", tv.Owner)
	}
	// Each copy once: Meta's redelivery of either is a duplicate.
	h.post("billing-bot", env["BILLING_SECRET"], messageCopy(messenger.ChannelMessaging, "m_social", "hello", ts))
	h.post("support-bot", env["SUPPORT_SECRET"], messageCopy(messenger.ChannelStandby, "m_social", "hello", ts))
	h.billing.none(h)
	h.support.none(h)
	// The person's activity counted once: one message, one window.
	if tv := h.batonThread(); tv.LastUserMessageAt == nil || tv.LastUserMessageAt.UnixMilli() != ts {
		t.Fatalf("last user message %v", tv.LastUserMessageAt)
	}
}

// Evidence is ordered by Meta's time: a handover older than the last
// recorded transition does not move the owner, and the history says it
// was ignored and why.
func TestStaleEvidenceIsIgnored(t *testing.T) {
	h := newHarness(t)
	// billing-bot got the thread at t-1s (its handover webhook came first)
	if st, _ := h.post("billing-bot", env["BILLING_SECRET"], entries(passItem(billingID, h.ms(-time.Second)))); st != 200 {
		t.Fatal(st)
	}
	h.billing.next()
	// support-bot's copy of an earlier pass (t-2s, to support) comes late.
	if st, _ := h.post("support-bot", env["SUPPORT_SECRET"], entries(passItem(supportID, h.ms(-2*time.Second)))); st != 200 {
		t.Fatal(st)
	}
	h.support.next()
	tv := h.batonThread()
	if tv.Owner != "billing-bot" {
		t.Fatalf("owner %q: the late, older pass moved it", tv.Owner)
	}
	last := tv.History[len(tv.History)-1]
	if last.To != "support-bot" || last.From != "billing-bot" || !strings.Contains(last.Ignored, "older than the last transition") {
		t.Fatalf("history %+v", tv.History)
	}
}

// A batch is applied in timestamp order, whatever order its entries come
// in.
func TestBatchAppliedInTimestampOrder(t *testing.T) {
	h := newHarness(t)
	body := entries(passItem(billingID, h.ms(-time.Second)), passItem(inboxID, h.ms(-3*time.Second)))
	if st, _ := h.post("billing-bot", env["BILLING_SECRET"], body); st != 200 {
		t.Fatal(st)
	}
	h.billing.next()
	h.billing.next()
	tv := h.batonThread()
	if tv.Owner != "billing-bot" {
		t.Fatalf("owner %q, want billing-bot (the later pass)", tv.Owner)
	}
	for _, e := range tv.History {
		if e.Ignored != "" {
			t.Fatalf("in order, nothing is stale: %+v", tv.History)
		}
	}
}

// Control moves without a webhook when Meta's inbox takes an idle thread:
// an operator's reconcile records Meta's truth.
func TestAdminReconcile(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	if err := h.platform.InboxTakes(pageID, psid); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if tv := h.batonThread(); tv.Owner != "" {
		t.Fatalf("Baton learned of the take: %+v", tv)
	}
	var tv api.ThreadView
	if st := h.do("POST", h.admin+"/admin/threads/"+pageID+"/"+psid+"/reconcile", adminToken, nil, &tv); st != 200 || tv.Owner != "page-inbox" {
		t.Fatalf("%d %+v (platform: %s)", st, tv, h.platformOwner())
	}
	if last := tv.History[len(tv.History)-1]; last.Cause != "reconcile" || last.Metadata != "asked by an operator" {
		t.Fatalf("history %+v", tv.History)
	}
}

// Meta refuses a send with 10/2018300 though Baton's record said the app
// owns the thread: Baton asks Meta and records its answer.
func TestSendRefusedByMetaReconciles(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	// Behind Baton's back, the Page Inbox takes the idle thread (no
	// webhook), and Meta refuses the default app's send.
	if err := h.platform.InboxTakes(pageID, psid); err != nil {
		t.Fatal(err)
	}
	h.settle()
	g := graphAs(t, h, "v21.0")
	_, err := g.Send(context.Background(), messenger.Credentials{AccessToken: env["SUPPORT_API"]},
		&messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: messenger.MessagingTypeResponse, Message: &messenger.OutgoingMessage{Text: "hello"}})
	if !messenger.IsNotOwner(err) {
		t.Fatalf("send: %v", err)
	}
	h.eventually("the reconcile", func() bool { return h.batonThread().Owner == "page-inbox" })
}

// A bot says something and hands the thread over in the same
// millisecond: the echo of what it said, arriving after Baton recorded
// the pass, shows the app the pass took the thread from and is older
// than the pass.
func TestEchoFromBeforeBatonsPassIsOlder(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	if st := h.do("POST", h.baton+"/v1/threads/"+pageID+"/"+psid+"/pass", env["SUPPORT_API"], map[string]string{"to": "billing-bot"}, nil); st != 200 {
		t.Fatalf("pass: %d", st)
	}
	echo := fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":1,"messaging":[{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,"message":{"mid":"m_said","is_echo":true,"app_id":%s,"text":"connecting you"}}]}]}`,
		pageID, pageID, psid, h.ms(0), supportID)
	if st, _ := h.post("support-bot", env["SUPPORT_SECRET"], []byte(echo)); st != 200 {
		t.Fatal(st)
	}
	if tv := h.batonThread(); tv.Owner != "billing-bot" {
		t.Fatalf("owner %q after the late echo: %+v", tv.Owner, tv.History)
	}
}
