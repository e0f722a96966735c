package messengertest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

func TestConversationRoutingIdleThreadGoesToDefaultApp(t *testing.T) {
	e := newEnv(t)
	e.say("hello")
	if got := kinds(e.a.take()); got != "messaging:message" {
		t.Fatalf("default app got %q", got)
	}
	if got := kinds(e.b.take()); got != "standby:message" {
		t.Fatalf("other app got %q", got)
	}
	if e.owner() != "" {
		t.Fatalf("thread owned by %s, want idle", e.owner())
	}
}

func TestConversationRoutingPassAndStandby(t *testing.T) {
	e := newEnv(t)
	e.say("hello")
	e.a.take()
	e.b.take()

	// Anyone may pass an idle thread; the new owner is told, from null.
	if err := e.client.PassThreadControl(ctx(), credA, psid, botB, "billing"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	got := e.b.take()
	if kinds(got) != "messaging:pass_thread_control" {
		t.Fatalf("new owner got %q", kinds(got))
	}
	pass := got[0].Event.PassThreadControl
	if pass.PreviousOwnerAppID != "" || pass.NewOwnerAppID != botB || pass.Metadata != "billing" {
		t.Fatalf("pass event %+v", pass)
	}
	if !strings.Contains(string(got[0].Body), `"previous_owner_app_id":null`) {
		t.Fatalf("idle previous owner not sent as null: %s", got[0].Body)
	}
	if len(e.a.take()) != 0 {
		t.Fatal("the passing app was told of its own pass")
	}
	if e.owner() != botB {
		t.Fatalf("owner %q", e.owner())
	}

	e.say("my bill")
	if got := kinds(e.b.take()); got != "messaging:message" {
		t.Fatalf("owner got %q", got)
	}
	if got := kinds(e.a.take()); got != "standby:message" {
		t.Fatalf("default app got %q while not owner", got)
	}

	// The default app no longer owns the thread.
	err := e.client.PassThreadControl(ctx(), credA, psid, inboxID, "")
	wantGraphError(t, err, 100, 0, "(#100) calling app is not the thread owner")
	err = e.client.ReleaseThreadControl(ctx(), credA, psid, "")
	wantGraphError(t, err, 100, 0, "(#100) Only the current thread owner can release")

	// Passing to yourself is not a way to extend control; unknown targets
	// are refused.
	wantGraphError(t, e.client.PassThreadControl(ctx(), credB, psid, botB, ""), 100, 0, "(#100) Invalid parameter")
	wantGraphError(t, e.client.PassThreadControl(ctx(), credB, psid, "999", ""), 100, messenger.SubcodeIncorrectAppID, "(#100) Incorrect App ID.")

	// No target: back to the default app.
	if err := e.client.PassThreadControl(ctx(), credB, psid, "", "done"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	got = e.a.take()
	if kinds(got) != "messaging:pass_thread_control" || got[0].Event.PassThreadControl.PreviousOwnerAppID != botB {
		t.Fatalf("default app got %q %+v", kinds(got), got)
	}
	if e.owner() != botA {
		t.Fatalf("owner %q", e.owner())
	}
}

func TestConversationRoutingRelease(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	e.settle()
	e.a.take()
	e.b.take()
	must(t, e.client.ReleaseThreadControl(ctx(), credB, psid, "done"))
	e.settle()
	if e.owner() != "" {
		t.Fatalf("owner after release %q", e.owner())
	}
	if n := len(e.a.take()) + len(e.b.take()); n != 0 {
		t.Fatalf("release sent %d webhooks; none is documented", n)
	}
	e.say("again")
	if got := kinds(e.a.take()); got != "messaging:message" {
		t.Fatalf("idle thread: default app got %q", got)
	}
}

func TestConversationRoutingTake(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	e.a.take()

	// Taking an idle thread sends no webhook.
	must(t, e.client.TakeThreadControl(ctx(), credA, psid, "mine"))
	// Already the owner.
	wantGraphError(t, e.client.TakeThreadControl(ctx(), credA, psid, ""), 100, 0, "(#100) Invalid parameter")
	// bot-b lacks the takeover permission.
	wantGraphError(t, e.client.TakeThreadControl(ctx(), credB, psid, ""), 200, 0, "(#200) Permissions error")

	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	e.settle()
	e.b.take()
	must(t, e.client.TakeThreadControl(ctx(), credA, psid, "back to bot"))
	e.settle()
	got := e.b.take()
	if kinds(got) != "messaging:take_thread_control" {
		t.Fatalf("previous owner got %q", kinds(got))
	}
	tk := got[0].Event.TakeThreadControl
	if tk.PreviousOwnerAppID != botB || tk.NewOwnerAppID != botA || tk.Metadata != "back to bot" {
		t.Fatalf("take event %+v", tk)
	}
	if n := len(e.a.take()); n != 0 {
		t.Fatalf("the taker got %d webhooks", n)
	}
	// Request is for zero-config pages only.
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	wantGraphError(t, e.client.RequestThreadControl(ctx(), credA, psid, ""), 27, 0, "(#27) not supported when Conversation Routing is enabled")
}

func TestExpiryAndExtend(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	tr := e.truth()
	if tr.ExpiresAt == nil || tr.ExpiresAt.Sub(*tr.LastUserMessageAt) != 24*time.Hour {
		t.Fatalf("expiry %v after message at %v, want 24h later", tr.ExpiresAt, tr.LastUserMessageAt)
	}
	wantGraphError(t, e.client.ExtendThreadControl(ctx(), credA, psid, time.Hour), 100, 0, "(#100) Only the current thread owner can extend")

	// Extend: 3 days of control without a message.
	must(t, e.client.ExtendThreadControl(ctx(), credB, psid, 72*time.Hour))
	e.advance("71h")
	if e.owner() != botB {
		t.Fatalf("extended control lapsed early: owner %q", e.owner())
	}
	e.advance("2h")
	if e.owner() != "" {
		t.Fatalf("control did not lapse: owner %q", e.owner())
	}
	to, err := e.client.ThreadOwner(ctx(), credA, psid)
	if err != nil || !to.Idle {
		t.Fatalf("thread_owner after expiry: %+v %v", to, err)
	}

	// Plain 24 hours: 25 h without a message makes the thread idle.
	e.say("back")
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	e.advance("23h")
	if e.owner() != botB {
		t.Fatal("expired before 24h")
	}
	e.advance("2h")
	if e.owner() != "" {
		t.Fatalf("owner after 25h: %q", e.owner())
	}
}

func TestExtendDurationLimit(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	must(t, e.client.TakeThreadControl(ctx(), credA, psid, ""))
	// The client refuses more than 7 days itself; send the raw call.
	var out map[string]any
	st := e.ctlGraph("POST", "/v21.0/me/extend_thread_control?access_token="+tokenA, `{"recipient":{"id":"`+psid+`"},"duration":604801}`, &out)
	if st != 400 || out["error"].(map[string]any)["code"].(float64) != 100 {
		t.Fatalf("extend 7d+1s: %d %v", st, out)
	}
	must(t, e.client.ExtendThreadControl(ctx(), credA, psid, messenger.MaxExtend))
}

func TestThreadOwnerVisibility(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	for _, c := range []messenger.Credentials{credA, credB} {
		to, err := e.client.ThreadOwner(ctx(), c, psid)
		if err != nil || !to.Idle {
			t.Fatalf("idle: %+v %v", to, err)
		}
	}
	must(t, e.client.PassThreadControl(ctx(), credA, psid, inboxID, ""))
	// The default app sees the owner; another app only when the thread expires.
	to, err := e.client.ThreadOwner(ctx(), credA, psid)
	if err != nil || to.AppID != inboxID || to.Expires.IsZero() {
		t.Fatalf("default app view: %+v %v", to, err)
	}
	to, err = e.client.ThreadOwner(ctx(), credB, psid)
	if err != nil || to.AppID != "" || to.Idle || to.Expires.IsZero() {
		t.Fatalf("other app view: %+v %v", to, err)
	}
}

func TestSendRules(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	e.a.take()
	e.b.take()
	msg := func(text string) *messenger.SendRequest {
		return &messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: messenger.MessagingTypeResponse, Message: &messenger.OutgoingMessage{Text: text, Metadata: "m1"}}
	}

	// Idle: only the default app may send.
	_, err := e.client.Send(ctx(), credB, msg("no"))
	wantGraphError(t, err, 10, 2018300, "(#10) Message failed to send because another app is controlling this thread now.")
	res, err := e.client.Send(ctx(), credA, msg("hello"))
	if err != nil || res.RecipientID != psid || !strings.HasPrefix(res.MessageID, "m_") {
		t.Fatalf("send: %+v %v", res, err)
	}
	e.settle()
	// The echo: to the default app on messaging, the other on standby,
	// app_id as a JSON number as in Meta's examples.
	a, b := e.a.take(), e.b.take()
	if kinds(a) != "messaging:message_echo" || kinds(b) != "standby:message_echo" {
		t.Fatalf("echo routing: a %q, b %q", kinds(a), kinds(b))
	}
	if m := a[0].Event.Message; m.AppID != botA || m.Metadata != "m1" || m.Mid != res.MessageID || a[0].Event.Sender.ID != pageID || a[0].Event.Recipient.ID != psid {
		t.Fatalf("echo %+v", a[0].Event)
	}
	if !strings.Contains(string(a[0].Body), `"app_id":`+botA+`,`) {
		t.Fatalf("echo app_id not a number: %s", a[0].Body)
	}

	// Outside the 24-hour window, HUMAN_AGENT allows 7 days; retired tags
	// answer 100.
	e.advance("25h")
	_, err = e.client.Send(ctx(), credA, msg("late"))
	wantGraphError(t, err, 10, 2018278, "")
	tagged := msg("agent here")
	tagged.MessagingType, tagged.Tag = messenger.MessagingTypeMessageTag, messenger.TagHumanAgent
	if _, err := e.client.Send(ctx(), credA, tagged); err != nil {
		t.Fatalf("HUMAN_AGENT within 7 days: %v", err)
	}
	tagged.Tag = messenger.TagPostPurchaseUpdate
	_, err = e.client.Send(ctx(), credA, tagged)
	wantGraphError(t, err, 100, 0, "(#100) Invalid parameter")
	e.advance("144h") // 7 days and 1 hour since the person wrote
	tagged.Tag = messenger.TagHumanAgent
	_, err = e.client.Send(ctx(), credA, tagged)
	wantGraphError(t, err, 10, 2018278, "")

	tr := e.truth()
	if len(tr.Messages) != 3 || tr.Messages[1].App != "bot-a" || tr.Messages[1].Text != "hello" || tr.Messages[2].Tag != messenger.TagHumanAgent {
		t.Fatalf("thread messages %+v", tr.Messages)
	}
}

func TestSendWithThreadControl(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	e.a.take()
	e.b.take()
	req := &messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: messenger.MessagingTypeResponse,
		Message: &messenger.OutgoingMessage{Text: "Transferring you"}, ThreadControl: &messenger.ThreadControl{ControlType: "pass", AppID: botB}}
	if _, err := e.client.Send(ctx(), credA, req); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if e.owner() != botB {
		t.Fatalf("owner %q", e.owner())
	}
	if got := kinds(e.b.take()); got != "standby:message_echo messaging:pass_thread_control" {
		t.Fatalf("bot-b got %q", got)
	}
	// Release is the default control type and sends no webhook.
	req.ThreadControl = &messenger.ThreadControl{}
	if _, err := e.client.Send(ctx(), credB, req); err != nil {
		t.Fatal(err)
	}
	if e.owner() != "" {
		t.Fatalf("owner after send+release %q", e.owner())
	}
}

func TestPageInboxReplyTakesControl(t *testing.T) {
	e := newEnv(t)
	e.say("I want a human")
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	e.settle()
	e.a.take()
	e.b.take()

	var out struct{ Mid string }
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/messages?wait=true", map[string]string{"text": "Hi, Anna here"}, &out); st != 200 {
		t.Fatalf("inbox reply: %d", st)
	}
	if e.owner() != inboxID || e.truth().OwnerApp != inboxName {
		t.Fatalf("owner %q after an inbox reply", e.owner())
	}
	b := e.b.take()
	if kinds(b) != "messaging:take_thread_control standby:message_echo" {
		t.Fatalf("previous owner got %q", kinds(b))
	}
	if tk := b[0].Event.TakeThreadControl; tk.PreviousOwnerAppID != botB || tk.NewOwnerAppID != inboxID {
		t.Fatalf("take %+v", tk)
	}
	if echo := b[1].Event.Message; echo.AppID != inboxID || echo.Text != "Hi, Anna here" || echo.Mid != out.Mid {
		t.Fatalf("echo %+v", echo)
	}
	if got := kinds(e.a.take()); got != "standby:message_echo" {
		t.Fatalf("default app got %q", got)
	}

	// Done in the inbox hands the thread back to the default app, and no
	// app is told (REFERENCE §0.1).
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/done?wait=true", nil, nil); st != 200 {
		t.Fatalf("done: %d", st)
	}
	if e.owner() != botA {
		t.Fatalf("owner after done %q", e.owner())
	}
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "" || b != "" {
		t.Fatalf("done sent webhooks: default app %q, other %q", a, b)
	}
	// The default app learns it from its channel: the next message comes
	// on messaging.
	e.say("thanks")
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "messaging:message" || b != "standby:message" {
		t.Fatalf("after done: default app %q, other %q", a, b)
	}
}

func TestInboxDoneSettings(t *testing.T) {
	toInbox := func(e *env) {
		e.say("human please")
		if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/take?wait=true", nil, nil); st != 200 {
			t.Fatalf("take: %d", st)
		}
		e.a.take()
		e.b.take()
	}
	done := func(e *env) {
		if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/done?wait=true", nil, nil); st != 200 {
			t.Fatalf("done: %d", st)
		}
	}
	t.Run("inbox_done_webhook", func(t *testing.T) {
		e := newEnv(t, func(c *messengertest.Config) { c.Settings.InboxDoneWebhook = true })
		toInbox(e)
		done(e)
		a := e.a.take()
		if kinds(a) != "messaging:pass_thread_control" || kinds(e.b.take()) != "" {
			t.Fatalf("default app got %q", kinds(a))
		}
		if p := a[0].Event.PassThreadControl; p.PreviousOwnerAppID != inboxID || p.NewOwnerAppID != botA {
			t.Fatalf("pass %+v", p)
		}
	})
	t.Run("inbox_done_to idle", func(t *testing.T) {
		e := newEnv(t, func(c *messengertest.Config) { c.Settings.InboxDoneTo = "idle" })
		toInbox(e)
		done(e)
		if e.owner() != "" || kinds(e.a.take()) != "" {
			t.Fatalf("owner %q after done to idle", e.owner())
		}
	})
	t.Run("not the inbox's thread", func(t *testing.T) {
		e := newEnv(t)
		e.say("hi")
		if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/done", nil, nil); st != 409 {
			t.Fatalf("done on a thread the inbox does not own: %d", st)
		}
	})
}

func TestZeroConfig(t *testing.T) {
	e := newEnv(t, withMode(messengertest.ModeZeroConfig))
	e.say("hi")
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "messaging:message" || b != "messaging:message" {
		t.Fatalf("zero-config: every app gets messaging; a %q b %q", a, b)
	}
	wantGraphError(t, e.client.TakeThreadControl(ctx(), credA, psid, ""), 27, 0, "(#27) Take thread control is not supported when Conversation Routing is not enabled.")
	wantGraphError(t, e.client.PassThreadControl(ctx(), credA, psid, "", ""), 100, 0, "(#100) The parameter target_app_id is required")
	// While idle every app may reply: coordination is the apps' problem.
	if _, err := e.client.Send(ctx(), credB, textTo("from b")); err != nil {
		t.Fatalf("zero-config idle send by a non-default app: %v", err)
	}
	e.settle()
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "messaging:message_echo" || b != "messaging:message_echo" {
		t.Fatalf("zero-config echoes: a %q b %q", a, b)
	}

	// The first app to request an idle thread gets it, with a pass webhook.
	must(t, e.client.RequestThreadControl(ctx(), credB, psid, "mine please"))
	e.settle()
	got := e.b.take()
	if kinds(got) != "messaging:pass_thread_control" || got[0].Event.PassThreadControl.PreviousOwnerAppID != "" || got[0].Event.PassThreadControl.NewOwnerAppID != botB {
		t.Fatalf("requester got %q %+v", kinds(got), got)
	}
	wantGraphError(t, e.client.RequestThreadControl(ctx(), credB, psid, ""), 100, 0, "(#100) Invalid parameter")

	// Now owned: a request notifies the owner, control stays.
	must(t, e.client.RequestThreadControl(ctx(), credA, psid, "let me"))
	e.settle()
	got = e.b.take()
	if kinds(got) != "messaging:request_thread_control" || got[0].Event.RequestThreadControl.RequestedOwnerAppID != botA || got[0].Event.RequestThreadControl.Metadata != "let me" {
		t.Fatalf("owner got %q %+v", kinds(got), got)
	}
	if e.owner() != botB {
		t.Fatalf("request moved control to %q", e.owner())
	}
	// Only the owner may send now.
	_, err := e.client.Send(ctx(), credA, &messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: "RESPONSE", Message: &messenger.OutgoingMessage{Text: "x"}})
	wantGraphError(t, err, 10, 2018300, "")
	// In zero-config an idle thread may be passed to yourself.
	must(t, e.client.ReleaseThreadControl(ctx(), credB, psid, ""))
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botA, ""))
	if e.owner() != botA {
		t.Fatalf("owner %q", e.owner())
	}
}

func TestLegacyPrimarySecondary(t *testing.T) {
	e := newEnv(t, withMode(messengertest.ModeLegacy))
	e.say("hi")
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "messaging:message" || b != "standby:message" {
		t.Fatalf("legacy: primary gets messaging; a %q b %q", a, b)
	}
	if e.owner() != botA {
		t.Fatalf("primary does not own by default: %q", e.owner())
	}
	wantGraphError(t, e.client.PassThreadControl(ctx(), credA, psid, "", ""), 100, 0, "(#100) The parameter target_app_id is required")
	wantGraphError(t, e.client.TakeThreadControl(ctx(), credB, psid, ""), 200, 0, "(#200) Permissions error")

	// Handover v1: either app may respond.
	if _, err := e.client.Send(ctx(), credB, textTo("secondary speaking")); err != nil {
		t.Fatalf("legacy send by a secondary: %v", err)
	}
	e.settle()
	if got := kinds(e.a.take()); got != "messaging:message_echo" {
		t.Fatalf("primary got %q for the secondary's send", got)
	}

	// Secondary asks, primary passes, secondary passes back by default.
	must(t, e.client.RequestThreadControl(ctx(), credB, psid, "please"))
	e.settle()
	if got := e.a.take(); kinds(got) != "messaging:request_thread_control" || got[0].Event.RequestThreadControl.RequestedOwnerAppID != botB {
		t.Fatalf("primary got %q", kinds(got))
	}
	must(t, e.client.PassThreadControl(ctx(), credA, psid, inboxID, ""))
	_, err := e.client.ThreadOwner(ctx(), credB, psid)
	wantGraphError(t, err, 100, 2018234, "(#100) Denying visibility of any secondary receiver to another secondary receiver other than itself.")
	to, err := e.client.ThreadOwner(ctx(), credA, psid)
	if err != nil || to.AppID != inboxID {
		t.Fatalf("primary view %+v %v", to, err)
	}
	must(t, e.client.TakeThreadControl(ctx(), credA, psid, ""))
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	must(t, e.client.PassThreadControl(ctx(), credB, psid, "", ""))
	if e.owner() != botA {
		t.Fatalf("secondary pass without target went to %q", e.owner())
	}
	e.advance("48h") // no expiry in the legacy protocol
	if e.owner() != botA {
		t.Fatalf("legacy thread expired to %q", e.owner())
	}

	recv, err := e.client.SecondaryReceivers(ctx(), credA)
	if err != nil || len(recv) != 2 {
		t.Fatalf("secondary receivers %+v %v", recv, err)
	}
	_, err = e.client.SecondaryReceivers(ctx(), credB)
	wantGraphError(t, err, 100, 2018171, "Only available to Primary and Secondary Receivers.")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func textTo(text string) *messenger.SendRequest {
	return &messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: messenger.MessagingTypeResponse, Message: &messenger.OutgoingMessage{Text: text}}
}
