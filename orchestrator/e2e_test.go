package orchestrator_test

import (
	"testing"

	"github.com/batonhq/baton/adapters"
)

// TestEndToEnd is the trip of DESIGN §3 through real sockets: a person
// writes, the primary bot hands the thread to a second bot, the second bot
// releases, a Page Inbox agent replies, and 25 hours without a message
// make the thread idle, with the fake platform and Baton agreeing at each
// step.
func TestEndToEnd(t *testing.T) {
	h := newHarness(t)
	h.support.setRespond(func(d adapters.Delivery) (int, string) {
		if d.Channel == "messaging" && text(d) == "I have a billing question" {
			return 200, `{"actions":[{"type":"pass","to":"billing-bot","metadata":"billing"}]}`
		}
		return 200, ""
	})

	// 1. A person writes into an idle thread: the default app's bot gets it.
	h.say("hello")
	d := h.support.next()
	if d.Channel != "messaging" || d.Kind != "message" || text(d) != "hello" || d.PageID != pageID || d.PSID != psid || d.Thread.State != "idle" {
		t.Fatalf("support bot got %+v", d)
	}
	h.billing.none(h) // billing-bot's adapter does not ask for standby

	// 2. The bot answers with a pass action; both sides agree on the owner.
	h.say("I have a billing question")
	if d := h.support.next(); text(d) != "I have a billing question" {
		t.Fatalf("support bot got %q", text(d))
	}
	d = h.billing.next() // Meta's pass_thread_control, forwarded
	if d.Kind != "pass_thread_control" || d.Channel != "messaging" {
		t.Fatalf("billing bot got %+v", d)
	}
	if h.platformOwner() != billingID {
		t.Fatalf("platform owner %q", h.platformOwner())
	}
	tv := h.batonThread()
	if tv.Owner != "billing-bot" || tv.OwnerAppID != billingID || tv.State != "secondary" {
		t.Fatalf("baton thread %+v", tv)
	}
	last := tv.History[len(tv.History)-1]
	if last.Event != "pass" || last.To != "billing-bot" || last.By != "support-bot" || last.Cause != "call" || last.Metadata != "billing" {
		t.Fatalf("history %+v", tv.History)
	}

	// 3. The next message: the owner on messaging, the primary on standby.
	h.say("my invoice is wrong")
	if d := h.billing.next(); d.Channel != "messaging" || text(d) != "my invoice is wrong" || d.Thread.Owner != "billing-bot" {
		t.Fatalf("billing bot got %+v", d)
	}
	if d := h.support.next(); d.Channel != "standby" || text(d) != "my invoice is wrong" {
		t.Fatalf("support bot got %+v", d)
	}

	// 4. The second bot releases through the bot API.
	var after struct{ Owner, State string }
	if st := h.do("POST", h.baton+"/v1/threads/"+pageID+"/"+psid+"/release", env["BILLING_API"], map[string]string{"metadata": "done"}, &after); st != 200 || after.State != "idle" || after.Owner != "" {
		t.Fatalf("release: %d %+v", st, after)
	}
	if h.platformOwner() != "" {
		t.Fatalf("platform owner after release %q", h.platformOwner())
	}

	// 5. A Page Inbox agent replies: the inbox owns the thread, as on Meta.
	if st := h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/inbox/"+psid+"/messages?wait=true", "", map[string]string{"text": "Anna here"}, nil); st != 200 {
		t.Fatalf("inbox reply: %d", st)
	}
	if d := h.support.next(); d.Kind != "message_echo" || d.Channel != "standby" {
		t.Fatalf("support bot got %+v", d)
	}
	if tv := h.batonThread(); tv.Owner != "page-inbox" || tv.OwnerAppID != inboxID || h.platformOwner() != inboxID {
		t.Fatalf("after inbox reply: baton %+v, platform %q", tv, h.platformOwner())
	}

	// 6. 25 hours without a message: idle on both sides.
	h.platform.Advance(25 * 60 * 60 * 1e9)
	if h.platformOwner() != "" {
		t.Fatalf("platform still owned by %q", h.platformOwner())
	}
	h.eventually("baton to expire the thread", func() bool { return h.batonThread().State == "idle" })
	tv = h.batonThread()
	if last := tv.History[len(tv.History)-1]; last.Event != "expire" || last.Cause != "expiry" || last.From != "page-inbox" {
		t.Fatalf("history %+v", tv.History)
	}
}
