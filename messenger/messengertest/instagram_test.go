package messengertest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// An Instagram professional account: the page of newEnv, with its id as
// the account id.
func withInstagram(c *messengertest.Config) { c.Pages[0].Platform = messengertest.PlatformInstagram }

const igInboxID = "1217981644879628"

func TestInstagramWebhooks(t *testing.T) {
	e := newEnv(t, withInstagram)
	e.say("hi")
	a, b := e.a.take(), e.b.take()
	if kinds(a) != "messaging:message" || kinds(b) != "standby:message" {
		t.Fatalf("a %q, b %q", kinds(a), kinds(b))
	}
	for _, r := range append(a, b...) {
		if r.Object != messenger.ObjectInstagram || r.EntryID != pageID || !strings.HasPrefix(string(r.Body), `{"object":"instagram",`) {
			t.Fatalf("object %q entry %q: %s", r.Object, r.EntryID, r.Body)
		}
	}
	// Conversation Routing as on Messenger: a pass from idle, the new
	// owner told.
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, "to billing"))
	e.settle()
	b = e.b.take()
	if kinds(b) != "messaging:pass_thread_control" || b[0].Object != messenger.ObjectInstagram {
		t.Fatalf("pass: %q %+v", kinds(b), b)
	}
	if p := b[0].Event.PassThreadControl; p.PreviousOwnerAppID != "" || p.NewOwnerAppID != botB || p.Metadata != "to billing" {
		t.Fatalf("pass %+v", p)
	}
}

func TestInstagramErrors(t *testing.T) {
	e := newEnv(t, withInstagram)
	e.say("hi")
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	const notOwner = "The action is invalid since it's not the thread owner."
	wantGraphError(t, e.client.PassThreadControl(ctx(), credA, psid, "", ""), 100, 2534037, notOwner)
	wantGraphError(t, e.client.ReleaseThreadControl(ctx(), credA, psid, ""), 100, 2534037, notOwner)
	wantGraphError(t, e.client.ExtendThreadControl(ctx(), credA, psid, time.Hour), 100, 2534037, notOwner)
	// Sending into another app's thread: Meta's Instagram page shows
	// 10/2018300, as on Messenger.
	_, err := e.client.Send(ctx(), credA, textTo("hello"))
	wantGraphError(t, err, 10, 2018300, "")

	must(t, e.client.ReleaseThreadControl(ctx(), credB, psid, ""))
	e.advance("25h") // the same 24 h window as Messenger
	_, err = e.client.Send(ctx(), credA, textTo("late"))
	wantGraphError(t, err, 10, 2534022, "(#10) This message is sent outside of allowed window.")

	fs, err := e.client.FeatureStatus(ctx(), credA)
	if err != nil || !fs.IGMultiApp || fs.MsgrMultiApp {
		t.Fatalf("feature status %+v %v", fs, err)
	}
}

func TestInstagramInbox(t *testing.T) {
	e := newEnv(t, withInstagram)
	var pages struct{ Pages []messengertest.PageInfo }
	e.ctl("GET", "/_platform/pages", nil, &pages)
	var apps []string
	for _, a := range pages.Pages[0].Apps {
		apps = append(apps, a.Name)
	}
	if pages.Pages[0].Platform != "instagram" || strings.Join(apps, ",") != messengertest.InstagramInboxName+",bot-a,bot-b" {
		t.Fatalf("pages %+v", pages.Pages)
	}

	e.say("I want a person")
	must(t, e.client.PassThreadControl(ctx(), credA, psid, botB, ""))
	e.settle()
	e.a.take()
	e.b.take()
	var out struct{ Mid string }
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/messages?wait=true", map[string]string{"text": "Hi, Anna here"}, &out); st != 200 {
		t.Fatalf("inbox reply: %d", st)
	}
	if e.owner() != igInboxID || e.truth().OwnerApp != messengertest.InstagramInboxName {
		t.Fatalf("owner %q after an inbox reply", e.owner())
	}
	b := e.b.take()
	if kinds(b) != "messaging:take_thread_control standby:message_echo" || b[0].Event.TakeThreadControl.NewOwnerAppID != igInboxID || b[1].Event.Message.AppID != igInboxID {
		t.Fatalf("previous owner got %q %+v", kinds(b), b)
	}
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/inbox/"+psid+"/done?wait=true", nil, nil); st != 200 || e.owner() != botA {
		t.Fatalf("done: %d, owner %q", st, e.owner())
	}
	// Instagram's inbox is there to pass to; the Page Inbox is not.
	wantGraphError(t, e.client.PassThreadControl(ctx(), credA, psid, inboxID, ""), 100, 2018164, "")
	must(t, e.client.PassThreadControl(ctx(), credA, psid, igInboxID, ""))
	if e.owner() != igInboxID {
		t.Fatalf("owner %q after a pass to Instagram's inbox", e.owner())
	}
}

func TestInstagramAIReply(t *testing.T) {
	e := newEnv(t, withInstagram)
	e.say("hi")
	e.a.take()
	mid := e.aiReply("Meta AI on Instagram")
	a := e.a.take()
	if kinds(a) != "messaging:message_echo" || e.owner() != "" {
		t.Fatalf("default app got %q, owner %q", kinds(a), e.owner())
	}
	wantAIEcho(t, a[0], igInboxID, "Meta AI on Instagram", mid)
}

func TestInstagramAndMessengerBatchesApart(t *testing.T) {
	const igID = "17841400100200300"
	e := newEnv(t, func(c *messengertest.Config) {
		c.Settings.MaxBatch = 10
		c.Pages = append(c.Pages, messengertest.PageConfig{
			ID: igID, Platform: messengertest.PlatformInstagram, DefaultApp: "bot-a",
			Apps: map[string]messengertest.PageAppConfig{"bot-a": {Token: "IG_TOKEN_A"}},
		})
	})
	e.holdWebhooks("hold", "bot-a")
	// In order, a batch ends where the next webhook has another object.
	for _, pg := range []string{pageID, pageID, igID, igID} {
		if st := e.ctl("POST", "/_platform/pages/"+pg+"/users/"+psid+"/messages", map[string]string{"text": pg}, nil); st != 200 {
			t.Fatalf("message to %s: %d", pg, st)
		}
	}
	e.holdWebhooks("release", "bot-a")
	bodies := map[string]string{}
	for _, r := range e.a.take() {
		if want := map[string]string{pageID: "page", igID: "instagram"}[string(r.EntryID)]; r.Object != want || r.Event.Message.Text != string(r.EntryID) {
			t.Fatalf("entry %s in a %q webhook", r.EntryID, r.Object)
		}
		bodies[string(r.Body)] = r.Object
	}
	if len(bodies) != 2 {
		t.Fatalf("want one POST per object, got %d: %v", len(bodies), bodies)
	}
}
