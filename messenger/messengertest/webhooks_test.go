package messengertest_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

type hookList struct {
	Webhooks []messengertest.WebhookRecord
}

func (e *env) hooks(query string) []messengertest.WebhookRecord {
	e.t.Helper()
	var out hookList
	e.ctl("GET", "/_platform/webhooks"+query, nil, &out)
	return out.Webhooks
}

func TestWebhookRetriedUntilDelivered(t *testing.T) {
	e := newEnv(t)
	e.a.setFail(2)
	e.say("are you there?")
	got := e.a.take()
	if kinds(got) != "messaging:message" || got[0].Event.Message.Text != "are you there?" {
		t.Fatalf("after two failures the bot got %q", kinds(got))
	}
	h := e.hooks("?app=bot-a")
	if len(h) != 1 || h[0].Status != "delivered" || h[0].Attempts != 3 {
		t.Fatalf("record %+v", h)
	}
}

func TestWebhookFailureRecordedAndOrderKept(t *testing.T) {
	e := newEnv(t)
	e.a.setFail(100)
	e.say("first")
	h := e.hooks("?app=bot-a&status=failed")
	if len(h) != 1 || h[0].Attempts != 4 || h[0].LastStatus != 500 || !strings.Contains(h[0].LastError, "500") {
		t.Fatalf("failed record %+v", h)
	}
	e.a.setFail(0)
	e.say("second")
	e.say("third")
	var texts []string
	for _, r := range e.a.take() {
		texts = append(texts, r.Event.Message.Text)
	}
	if strings.Join(texts, ",") != "second,third" {
		t.Fatalf("bot got %v", texts)
	}
}

func TestAppUnsubscribedAfterAnHourOfFailures(t *testing.T) {
	e := newEnv(t)
	e.a.setFail(1000)
	e.say("one")
	e.advance("61m")
	e.say("two") // still failing, an hour after the first failure
	e.a.setFail(0)
	e.say("three")
	if got := e.a.take(); len(got) != 0 {
		t.Fatalf("unsubscribed app still got %q", kinds(got))
	}
	apps, err := e.client.SubscribedApps(ctx(), credB)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		if a.ID == botA {
			t.Fatalf("bot-a still listed as subscribed: %+v", a)
		}
	}
	// Re-subscribing restores delivery.
	must(t, e.client.Subscribe(ctx(), credA, messenger.FieldsForConversationRouting))
	e.say("four")
	if got := kinds(e.a.take()); got != "messaging:message" {
		t.Fatalf("after re-subscribing: %q", got)
	}
}

func TestWebhookEscapedLikeMeta(t *testing.T) {
	e := newEnv(t)
	e.say("Grüße / 😀 <b>")
	got := e.a.take()
	body := string(got[0].Body)
	if !strings.Contains(body, `"text":"Gr\u00fc\u00dfe \/ \ud83d\ude00 <b>"`) {
		t.Fatalf("body not escaped like Meta: %s", body)
	}
	if got[0].Event.Message.Text != "Grüße / 😀 <b>" {
		t.Fatalf("decoded %q", got[0].Event.Message.Text)
	}
	if strings.Contains(body, "\n") || strings.Contains(body, ": ") {
		t.Fatalf("body not compact: %s", body)
	}
}

func TestStandbyPostbackHasNoPayload(t *testing.T) {
	e := newEnv(t)
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/users/"+psid+"/postbacks?wait=true", map[string]string{"title": "Track", "payload": "TRACK"}, nil); st != 200 {
		t.Fatalf("postback: %d", st)
	}
	a, b := e.a.take(), e.b.take()
	if a[0].Event.Postback.Payload != "TRACK" || a[0].Channel != messenger.ChannelMessaging {
		t.Fatalf("owner postback %+v", a[0])
	}
	if b[0].Channel != messenger.ChannelStandby || b[0].Event.Postback.Payload != "" || b[0].Event.Postback.Title != "Track" {
		t.Fatalf("standby postback %+v", b[0].Event.Postback)
	}
}

func TestLinkAndSocialRouting(t *testing.T) {
	e := newEnv(t, func(c *messengertest.Config) {
		c.Pages[0].LinkRoutes = map[string]string{"billing": "bot-b"}
	})
	var out struct{ Mid string }
	e.ctl("POST", "/_platform/pages/"+pageID+"/users/"+psid+"/messages?wait=true", map[string]string{"text": "invoice", "ref": "billing"}, &out)
	if e.owner() != botB {
		t.Fatalf("link route: owner %q", e.owner())
	}
	got := e.b.take()
	if kinds(got) != "messaging:referral messaging:message" || got[0].Event.Referral.Ref != "billing" {
		t.Fatalf("routed app got %q", kinds(got))
	}

	s := newEnv(t, func(c *messengertest.Config) { c.Pages[0].SocialRoute = "bot-b" })
	s.say("hi")
	if s.owner() != botB {
		t.Fatalf("social route: owner %q", s.owner())
	}
}

func TestOneTimeNotificationToken(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	var out struct {
		Token string `json:"one_time_notif_token"`
	}
	e.ctl("POST", "/_platform/pages/"+pageID+"/users/"+psid+"/optins?wait=true", map[string]string{"payload": "BACK_IN_STOCK"}, &out)
	a := e.a.take()
	if kinds(a) != "messaging:message messaging:optin" || a[1].Event.Optin.OneTimeNotifToken != out.Token || a[1].Event.Optin.Type != messenger.OptinOneTimeNotif {
		t.Fatalf("optin %q %+v", kinds(a), a)
	}
	e.advance("30h") // outside the window: the token still works, once
	req := &messenger.SendRequest{Recipient: messenger.Recipient{OneTimeNotifToken: out.Token}, MessagingType: messenger.MessagingTypeUpdate, Message: &messenger.OutgoingMessage{Text: "back in stock"}}
	if _, err := e.client.Send(ctx(), credA, req); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.Send(ctx(), credA, req)
	wantGraphError(t, err, 100, 0, "(#100) Invalid one_time_notif_token")
}

func TestSettings(t *testing.T) {
	t.Run("take_success_body thread_owner", func(t *testing.T) {
		e := newEnv(t, func(c *messengertest.Config) { c.Settings.TakeSuccessBody = "thread_owner" })
		e.say("hi")
		var out map[string]any
		if st := e.ctlGraph("POST", "/v21.0/me/take_thread_control?access_token="+tokenA, `{"recipient":{"id":"`+psid+`"}}`, &out); st != 200 || out["data"] == nil {
			t.Fatalf("%d %v", st, out)
		}
	})
	t.Run("idle_thread_owner_body object", func(t *testing.T) {
		e := newEnv(t, func(c *messengertest.Config) { c.Settings.IdleThreadOwnerBody = "object" })
		var out map[string]any
		if st := e.ctlGraph("GET", "/me/thread_owner?recipient="+psid+"&access_token="+tokenA, "", &out); st != 200 || len(out) != 0 {
			t.Fatalf("%d %v", st, out)
		}
	})
	t.Run("metadata_limit", func(t *testing.T) {
		e := newEnv(t, func(c *messengertest.Config) { c.Settings.MetadataLimit = 10 })
		e.say("hi")
		wantGraphError(t, e.client.PassThreadControl(ctx(), credA, psid, botB, strings.Repeat("x", 11)), 100, 0, "(#100) Invalid parameter")
		must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, strings.Repeat("x", 10)))
	})
	t.Run("default metadata limit is 1000", func(t *testing.T) {
		e := newEnv(t)
		e.say("hi")
		wantGraphError(t, e.client.PassThreadControl(ctx(), credA, psid, botB, strings.Repeat("x", longText)), 100, 0, "(#100) Invalid parameter")
	})
	t.Run("max_batch", func(t *testing.T) {
		e := newEnv(t, func(c *messengertest.Config) { c.Settings.MaxBatch = 10 })
		e.a.setFail(1) // hold the first POST so that the next events queue up
		for _, s := range []string{"a", "b", "c"} {
			e.ctl("POST", "/_platform/pages/"+pageID+"/users/"+psid+"/messages", map[string]string{"text": s}, nil)
		}
		e.settle()
		var texts []string
		for _, r := range e.a.take() {
			texts = append(texts, r.Event.Message.Text)
		}
		if strings.Join(texts, "") != "abc" {
			t.Fatalf("order across batches: %v", texts)
		}
	})
	t.Run("pass_webhook_to all", func(t *testing.T) {
		e := newEnv(t, func(c *messengertest.Config) { c.Settings.PassWebhookTo = "all" })
		e.say("hi")
		e.a.take()
		e.b.take()
		must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
		e.settle()
		if kinds(e.a.take()) != "messaging:pass_thread_control" || kinds(e.b.take()) != "messaging:pass_thread_control" {
			t.Fatal("pass not sent to every app")
		}
	})
	t.Run("require_appsecret_proof", func(t *testing.T) {
		e := newEnv(t, func(c *messengertest.Config) { c.Settings.RequireAppSecretProof = true })
		e.say("hi")
		_, err := e.client.ThreadOwner(ctx(), credB, psid) // credB has no app secret
		wantGraphError(t, err, 100, 0, "Invalid appsecret_proof provided in the API argument")
		if _, err := e.client.ThreadOwner(ctx(), credA, psid); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGraphAuthAndParameterForms(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	bad := messenger.Credentials{AccessToken: "nope"}
	wantGraphError(t, e.client.TakeThreadControl(ctx(), bad, psid, ""), 190, 0, "Invalid OAuth access token.")

	// Query-string form with a JSON-ish recipient, no version segment.
	q := url.Values{"recipient": {"{id:" + psid + "}"}, "target_app_id": {botB}, "access_token": {tokenA}}
	var out map[string]any
	if st := e.ctlGraph("POST", "/me/pass_thread_control?"+q.Encode(), "", &out); st != 200 || out["success"] != true {
		t.Fatalf("query form: %d %v", st, out)
	}
	// Form body, page id node, Bearer token, any version.
	req := e.newRequest("POST", "/v6.0/"+pageID+"/release_thread_control", "recipient="+url.QueryEscape(`{"id":"`+psid+`"}`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tokenB)
	if st := e.do(req, &out); st != 200 {
		t.Fatalf("form body: %d %v", st, out)
	}
	// A page the token does not belong to.
	if st := e.ctlGraph("POST", "/v21.0/999/take_thread_control?access_token="+tokenA, `{"recipient":{"id":"`+psid+`"}}`, &out); st != 400 {
		t.Fatalf("other page: %d", st)
	}
	// An unknown person.
	wantGraphError(t, e.client.TakeThreadControl(ctx(), credA, "42", ""), 100, 2018001, "(#100) No matching user found")
	// Missing recipient.
	if st := e.ctlGraph("POST", "/v21.0/me/take_thread_control?access_token="+tokenA, `{}`, &out); st != 400 {
		t.Fatalf("missing recipient: %d", st)
	}

	var calls struct{ Calls []messengertest.Call }
	e.ctl("GET", "/_platform/calls?edge=pass_thread_control", nil, &calls)
	if len(calls.Calls) != 1 || calls.Calls[0].App != "bot-a" || calls.Calls[0].Params["target_app_id"] != botB || calls.Calls[0].Params["access_token"] != "" {
		t.Fatalf("calls %+v", calls.Calls)
	}
	fs, err := e.client.FeatureStatus(ctx(), credA)
	if err != nil || !fs.MsgrMultiApp {
		t.Fatalf("feature status %+v %v", fs, err)
	}
}

func TestControlSurfaceErrors(t *testing.T) {
	e := newEnv(t)
	var out map[string]any
	if st := e.ctl("POST", "/_platform/pages/1/users/"+psid+"/messages", map[string]string{"text": "x"}, &out); st != 404 {
		t.Fatalf("unknown page: %d", st)
	}
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/users/"+psid+"/messages", map[string]string{"txt": "x"}, &out); st != 400 || !strings.Contains(out["error"].(string), "txt") {
		t.Fatalf("typo in key: %d %v", st, out)
	}
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/messages", map[string]string{"text": "x"}, &out); st != 404 {
		t.Fatalf("inbox reply to nobody: %d", st)
	}
	if st := e.ctl("POST", "/_platform/clock", map[string]string{"advance": "soon"}, &out); st != 400 {
		t.Fatalf("bad duration: %d", st)
	}
	if st := e.ctl("GET", "/_platform/nope", nil, &out); st != 404 {
		t.Fatalf("unknown control path: %d", st)
	}
}
