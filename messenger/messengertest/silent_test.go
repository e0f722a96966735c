package messengertest_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// Control changes Meta sends no webhook for (REFERENCE §0.1): an
// orchestrator learns of them only from channels, echoes and thread_owner.

func TestSocialRoutingSendsNoHandover(t *testing.T) {
	e := newEnv(t, func(c *messengertest.Config) { c.Pages[0].SocialRoute = "bot-b" })
	e.say("hi")
	if e.owner() != botB {
		t.Fatalf("owner %q, want the social route's app", e.owner())
	}
	// The new owner's copy on messaging, the default app's on standby,
	// and no pass_thread_control.
	if a, b := kinds(e.a.take()), kinds(e.b.take()); b != "messaging:message" || a != "standby:message" {
		t.Fatalf("social route: default app %q, routed app %q", a, b)
	}
	// The owner keeps it while the person writes; no routing again.
	e.say("still there?")
	if a, b := kinds(e.a.take()), kinds(e.b.take()); b != "messaging:message" || a != "standby:message" {
		t.Fatalf("second message: default app %q, routed app %q", a, b)
	}

	// routing_webhook asks for the undocumented pass_thread_control.
	w := newEnv(t, func(c *messengertest.Config) {
		c.Pages[0].SocialRoute = "bot-b"
		c.Settings.RoutingWebhook = true
	})
	w.say("hi")
	b := w.b.take()
	if kinds(b) != "messaging:pass_thread_control messaging:message" {
		t.Fatalf("routing_webhook: routed app got %q", kinds(b))
	}
	if p := b[0].Event.PassThreadControl; p.PreviousOwnerAppID != "" || p.NewOwnerAppID != botB {
		t.Fatalf("pass %+v", p)
	}
}

func TestExpirySendsNoWebhook(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	e.settle()
	e.a.take()
	e.b.take()
	e.advance("25h")
	e.settle()
	if e.owner() != "" {
		t.Fatalf("owner %q after 25 h", e.owner())
	}
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "" || b != "" {
		t.Fatalf("expiry sent webhooks: a %q, b %q", a, b)
	}

	w := newEnv(t, func(c *messengertest.Config) { c.Settings.ExpiryWebhook = true })
	w.say("hi")
	must(t, w.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	w.settle()
	w.a.take()
	w.b.take()
	w.advance("25h")
	w.settle()
	b := w.b.take()
	if kinds(b) != "messaging:pass_thread_control" || kinds(w.a.take()) != "" {
		t.Fatalf("expiry_webhook: expired owner got %q", kinds(b))
	}
	if p := b[0].Event.PassThreadControl; p.PreviousOwnerAppID != botB || p.NewOwnerAppID != "" {
		t.Fatalf("pass %+v", p)
	}
}

func (e *env) aiReply(text string) string {
	e.t.Helper()
	var out struct{ Mid string }
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/ai_reply?wait=true", map[string]string{"text": text}, &out); st != 200 {
		e.t.Fatalf("ai_reply: %d", st)
	}
	return out.Mid
}

func wantAIEcho(t *testing.T, r received, inbox messenger.ID, text, mid string) {
	t.Helper()
	m := r.Event.Message
	if m == nil || !m.IsEcho || m.AppID != inbox || m.Text != text || m.Mid != mid {
		t.Fatalf("AI echo %+v", m)
	}
	if !bytes.Contains(r.Event.Raw, []byte(`"is_echo":true,"ai_generated":true`)) || !bytes.Contains(r.Event.Raw, []byte(`"app_id":`+string(inbox))) {
		t.Fatalf("AI echo not marked ai_generated, app_id a number: %s", r.Event.Raw)
	}
}

func TestMetaAIReply(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	e.settle()
	e.a.take()
	e.b.take()

	mid := e.aiReply("I'm Meta AI. How can I help?")
	if e.owner() != botB {
		t.Fatalf("a Meta AI reply moved control to %q", e.owner())
	}
	a, b := e.a.take(), e.b.take()
	if kinds(b) != "messaging:message_echo" || kinds(a) != "standby:message_echo" {
		t.Fatalf("owner got %q, default app %q", kinds(b), kinds(a))
	}
	wantAIEcho(t, b[0], inboxID, "I'm Meta AI. How can I help?", mid)
	wantAIEcho(t, a[0], inboxID, "I'm Meta AI. How can I help?", mid)
	tr := e.truth()
	if last := tr.Messages[len(tr.Messages)-1]; !last.AIGenerated || last.AppID != inboxID || last.Direction != "out" {
		t.Fatalf("thread message %+v", last)
	}

	// A staff reply is not marked.
	e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/messages?wait=true", map[string]string{"text": "Anna here"}, nil)
	for _, r := range e.a.take() {
		if bytes.Contains(r.Event.Raw, []byte("ai_generated")) {
			t.Fatalf("staff echo marked ai_generated: %s", r.Event.Raw)
		}
	}

	// ai_reply_takes_control: Meta AI's reply takes the thread like a
	// staff reply.
	w := newEnv(t, func(c *messengertest.Config) { c.Settings.AIReplyTakesControl = true })
	w.say("hi")
	must(t, w.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	w.settle()
	w.b.take()
	mid = w.aiReply("Meta AI here")
	if w.owner() != inboxID {
		t.Fatalf("owner %q, want the inbox", w.owner())
	}
	b = w.b.take()
	if kinds(b) != "messaging:take_thread_control standby:message_echo" {
		t.Fatalf("previous owner got %q", kinds(b))
	}
	wantAIEcho(t, b[1], inboxID, "Meta AI here", mid)

	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/42/ai_reply", map[string]string{"text": "x"}, nil); st != 404 {
		t.Fatalf("ai_reply to nobody: %d", st)
	}
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/ai_reply", map[string]string{}, nil); st != 400 {
		t.Fatalf("ai_reply without text: %d", st)
	}
}

// Pass to yourself: refused to the owner, a claim of an idle thread; and
// extend keeps the later expiry unless extend_can_shorten.
func TestPassToSelfAndExtend(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.say("hi")
	e.settle()
	if e.owner() != "" {
		t.Fatalf("owner %q, want idle", e.owner())
	}
	if err := e.client.PassThreadControl(ctx, credB, psid, botB, ""); err != nil {
		t.Fatalf("claim of an idle thread: %v", err)
	}
	if e.owner() != botB {
		t.Fatalf("owner %q", e.owner())
	}
	if err := e.client.PassThreadControl(ctx, credB, psid, botB, ""); err == nil {
		t.Fatal("the owner passed to itself")
	}
	if err := e.client.ExtendThreadControl(ctx, credB, psid, 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	long := e.truth().ExpiresAt
	if err := e.client.ExtendThreadControl(ctx, credB, psid, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := e.truth().ExpiresAt; got == nil || long == nil || !got.Equal(*long) {
		t.Fatalf("a shorter extend moved the expiry from %v to %v", long, got)
	}
}
