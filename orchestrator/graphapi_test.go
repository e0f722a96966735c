package orchestrator_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
)

// A bot built on the messenger package's own client (as an SDK would be),
// pointed at Baton's /graph with its Baton token.
func graphAs(t *testing.T, h *harness, version string) *messenger.Client {
	c, err := messenger.NewClient(messenger.ClientOptions{BaseURL: h.baton + "/graph", Version: version, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// controlCalls counts the calls the platform got, but thread_owner reads.
func controlCalls(h *harness) int {
	n := 0
	for _, c := range h.platform.Calls() {
		if c.Edge != "thread_owner" {
			n++
		}
	}
	return n
}

func TestGraphCompatibleEndpoint(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	g := graphAs(t, h, "v6.0") // bottender's default version
	support := messenger.Credentials{AccessToken: env["SUPPORT_API"]}
	billing := messenger.Credentials{PageID: pageID, AccessToken: env["BILLING_API"]}
	ctx := context.Background()

	// Thread control goes through Baton: both sides agree afterwards.
	if err := g.PassThreadControl(ctx, support, psid, billingID, "billing"); err != nil {
		t.Fatal(err)
	}
	if h.platformOwner() != billingID || h.batonThread().Owner != "billing-bot" {
		t.Fatalf("after pass: platform %q, baton %+v", h.platformOwner(), h.batonThread())
	}
	// Refusals come back in Meta's envelope with Meta's codes, before the
	// call reaches Meta (a refusal that rests on the owner asks
	// thread_owner first).
	calls := controlCalls(h)
	wantErr(t, g.PassThreadControl(ctx, support, psid, inboxID, ""), 100, 0, "(#100) calling app is not the thread owner")
	wantErr(t, g.TakeThreadControl(ctx, billing, psid, ""), 200, 0, "(#200) Permissions error")
	wantErr(t, g.RequestThreadControl(ctx, support, psid, ""), 27, 0, "(#27) not supported when Conversation Routing is enabled")
	wantErr(t, g.PassThreadControl(ctx, billing, psid, "999", ""), 100, 2018164, "(#100) Incorrect App ID.")
	if n := controlCalls(h); n != calls {
		t.Fatalf("refused calls reached Meta: %d calls", n-calls)
	}

	// Sends: the owner's goes to Meta with the real token; another app's is
	// refused with 10/2018300.
	msg := &messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: messenger.MessagingTypeResponse, Message: &messenger.OutgoingMessage{Text: "billing here"}}
	res, err := g.Send(ctx, billing, msg)
	if err != nil || !strings.HasPrefix(res.MessageID, "m_") {
		t.Fatalf("owner send: %+v %v", res, err)
	}
	st, _ := h.platform.Thread(pageID, psid)
	if last := st.Messages[len(st.Messages)-1]; last.Text != "billing here" || last.App != "billing-bot" {
		t.Fatalf("platform got %+v", last)
	}
	_, err = g.Send(ctx, support, msg)
	wantErr(t, err, 10, 2018300, "(#10) Message failed to send because another app is controlling this thread now.")

	// Reads pass through to Meta: thread_owner as Meta answers it.
	to, err := g.ThreadOwner(ctx, support, psid)
	if err != nil || to.AppID != billingID {
		t.Fatalf("thread_owner: %+v %v", to, err)
	}
	// Outside the 24-hour window: refused, unless HUMAN_AGENT within 7 days.
	// (control extended first, so that billing-bot still owns the thread)
	if err := g.ExtendThreadControl(ctx, billing, psid, 72*time.Hour); err != nil {
		t.Fatal(err)
	}
	h.platform.Advance(25 * time.Hour) // the platform and Baton share this clock
	_, err = g.Send(ctx, billing, msg)
	wantErr(t, err, 10, 2018278, "(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview")
	msg.MessagingType, msg.Tag = messenger.MessagingTypeMessageTag, messenger.TagPostPurchaseUpdate
	_, err = g.Send(ctx, billing, msg)
	wantErr(t, err, 100, 0, "(#100) Invalid parameter")
	msg.Tag = messenger.TagHumanAgent
	if _, err := g.Send(ctx, billing, msg); err != nil {
		t.Fatalf("HUMAN_AGENT within 7 days: %v", err)
	}
	var errs struct{ Errors []struct{ Kind string } }
	h.do("GET", h.admin+"/admin/errors", adminToken, nil, &errs)
	if len(errs.Errors) == 0 || errs.Errors[0].Kind != "send_policy" {
		t.Fatalf("refusals not in recent errors: %+v", errs)
	}

	// A bad Baton token is Meta's 190.
	_, err = g.Send(ctx, messenger.Credentials{AccessToken: "nope"}, msg)
	wantErr(t, err, 190, 0, "Invalid OAuth access token.")
}

func TestGraphEndpointTakesTokensAsMetaDoes(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	// Form body, Bearer token, no version segment, /{page-id}/.
	form := url.Values{"recipient": {`{"id":"` + psid + `"}`}, "target_app_id": {billingID}}
	req, _ := http.NewRequest("POST", h.baton+"/graph/"+pageID+"/pass_thread_control", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+env["SUPPORT_API"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || h.platformOwner() != billingID {
		t.Fatalf("form pass: %d, owner %q", resp.StatusCode, h.platformOwner())
	}
	var out map[string]any
	if st := h.do("GET", h.baton+"/graph/v21.0/me/nothing_here?access_token="+env["SUPPORT_API"], "", nil, &out); st != 400 {
		t.Fatalf("unknown edge: %d %v", st, out)
	}
}

func wantErr(t *testing.T, err error, code, subcode int, msg string) {
	t.Helper()
	ge, ok := err.(*messenger.Error)
	if !ok {
		t.Fatalf("got %T %v, want Meta error %d/%d", err, err, code, subcode)
	}
	if ge.Code != code || ge.Subcode != subcode || (msg != "" && ge.Message != msg) || ge.FBTraceID == "" {
		t.Fatalf("got %+v, want %d/%d %q", ge, code, subcode, msg)
	}
}

func TestSendPolicyOneTimeTokenAndTakeToSend(t *testing.T) {
	h := newHarness(t, func(yaml *string) {
		// support-bot takes control to send instead of being refused.
		*yaml = strings.Replace(*yaml, "    token_env: SUPPORT_API\n", "    token_env: SUPPORT_API\n    send_policy: {not_owner: take}\n", 1)
	})
	g := graphAs(t, h, "v21.0")
	ctx := context.Background()
	support := messenger.Credentials{AccessToken: env["SUPPORT_API"]}
	billing := messenger.Credentials{AccessToken: env["BILLING_API"]}
	h.say("hi")
	h.support.next()

	// A person opts in to one notification; 30 hours later the window is
	// closed, but the token allows one message, once.
	var tok struct {
		Token string `json:"one_time_notif_token"`
	}
	h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/users/"+psid+"/optins?wait=true", "", map[string]string{"payload": "BACK_IN_STOCK"}, &tok)
	h.support.next() // the optin, delivered
	h.platform.Advance(30 * time.Hour)
	msg := &messenger.SendRequest{Recipient: messenger.Recipient{OneTimeNotifToken: tok.Token}, MessagingType: messenger.MessagingTypeUpdate, Message: &messenger.OutgoingMessage{Text: "It is back in stock"}}
	if _, err := g.Send(ctx, support, msg); err != nil {
		t.Fatalf("first use: %v", err)
	}
	calls := len(h.platform.Calls())
	_, err := g.Send(ctx, support, msg)
	wantErr(t, err, 100, 0, "(#100) Invalid one_time_notif_token")
	if len(h.platform.Calls()) != calls {
		t.Fatal("the second use reached Meta")
	}

	// The person writes again; billing-bot gets the thread; support-bot's
	// send takes control first, as its send_policy says.
	h.say("hello again")
	if err := g.PassThreadControl(ctx, support, psid, billingID, ""); err != nil {
		t.Fatal(err)
	}
	text := &messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: messenger.MessagingTypeResponse, Message: &messenger.OutgoingMessage{Text: "support here"}}
	if _, err := g.Send(ctx, support, text); err != nil {
		t.Fatalf("take-to-send: %v", err)
	}
	if h.platformOwner() != supportID || h.batonThread().Owner != "support-bot" {
		t.Fatalf("after take-to-send: platform %q baton %+v", h.platformOwner(), h.batonThread())
	}
	// billing-bot has no such policy and no take permission: refused.
	_, err = g.Send(ctx, billing, text)
	wantErr(t, err, 10, 2018300, "")

	// Release through /graph; a read Meta answers for a legacy-only edge.
	if err := g.ReleaseThreadControl(ctx, support, psid, "done"); err != nil {
		t.Fatal(err)
	}
	if h.platformOwner() != "" || h.batonThread().State != "idle" {
		t.Fatalf("after release: platform %q baton %+v", h.platformOwner(), h.batonThread())
	}
	_, err = g.SecondaryReceivers(ctx, support)
	wantErr(t, err, 100, 2018171, "Only available to Primary and Secondary Receivers.")
}
