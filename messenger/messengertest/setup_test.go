package messengertest_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// debug_token tells a page token's app, page and scopes to any app
// token; anything but a valid app token is refused.
func TestDebugToken(t *testing.T) {
	e := newEnv(t, func(c *messengertest.Config) {
		pa := c.Pages[0].Apps["bot-b"]
		pa.Scopes = []string{"pages_messaging"}
		c.Pages[0].Apps["bot-b"] = pa
	})
	appA := messenger.AppAccessToken(botA, secretA)
	info, err := e.client.DebugToken(ctx(), appA, tokenA)
	if err != nil || !info.IsValid || info.AppID != botA || info.ProfileID != pageID || info.Type != "PAGE" ||
		!slices.Equal(info.Scopes, []string{"pages_messaging", "pages_manage_metadata", "pages_show_list"}) {
		t.Fatalf("token A: %+v %v", info, err)
	}
	info, err = e.client.DebugToken(ctx(), appA, tokenB)
	if err != nil || info.AppID != botB || !slices.Equal(info.Scopes, []string{"pages_messaging"}) {
		t.Fatalf("token B: %+v %v", info, err)
	}
	info, err = e.client.DebugToken(ctx(), appA, "nope")
	if err != nil || info.IsValid || info.Error == nil || info.Error.Code != 190 {
		t.Fatalf("bad input token: %+v %v", info, err)
	}
	for _, tok := range []string{botA + "|wrong", tokenA, botA, "999|" + secretA} {
		_, err := e.client.DebugToken(ctx(), tok, tokenA)
		wantGraphError(t, err, 190, 0, "Invalid OAuth access token.")
	}
	// Without pages_manage_metadata the page subscription is refused.
	_, err = e.client.SubscribedApps(ctx(), credB)
	wantGraphError(t, err, 200, 0, "(#200) Requires pages_manage_metadata permission to manage the object")
}

// An app's webhook configuration: read, set after the handshake with the
// new callback, refused when the handshake fails; the app's webhooks
// then go to the new callback.
func TestAppSubscriptions(t *testing.T) {
	e := newEnv(t)
	appA := messenger.AppAccessToken(botA, secretA)
	subs, err := e.client.AppSubscriptions(ctx(), botA, appA)
	if err != nil || len(subs) != 1 || subs[0].Object != "page" || subs[0].CallbackURL != e.a.srv.URL || !subs[0].Active || len(subs[0].Fields) != len(messengertest.AllFields) {
		t.Fatalf("subscriptions %+v %v", subs, err)
	}
	// Another app's token neither reads nor changes them.
	_, err = e.client.AppSubscriptions(ctx(), botA, messenger.AppAccessToken(botB, secretB))
	if ge, ok := err.(*messenger.Error); !ok || ge.Code != 100 || ge.Subcode != 33 {
		t.Fatalf("other app's token: %v", err)
	}

	// A callback that does not answer the handshake is refused.
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer refuse.Close()
	sub := messenger.AppSubscription{Object: "page", CallbackURL: refuse.URL, Fields: []string{"messages"}, VerifyToken: "vt"}
	err = e.client.SetAppSubscription(ctx(), botA, appA, sub)
	if ge, ok := err.(*messenger.Error); !ok || ge.Code != messenger.CodeCallbackVerification {
		t.Fatalf("refusing callback: %v", err)
	}
	// One that answers is set, and webhooks go there.
	var moved atomic.Int32
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			if r.URL.Query().Get("hub.verify_token") != "vt" {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			_, _ = w.Write([]byte(r.URL.Query().Get("hub.challenge")))
			return
		}
		moved.Add(1)
	}))
	defer echo.Close()
	sub.CallbackURL = echo.URL
	if err := e.client.SetAppSubscription(ctx(), botA, appA, sub); err != nil {
		t.Fatal(err)
	}
	subs, _ = e.client.AppSubscriptions(ctx(), botA, appA)
	if len(subs) != 1 || subs[0].CallbackURL != echo.URL {
		t.Fatalf("after: %+v", subs)
	}
	e.say("hi")
	e.settle()
	if moved.Load() == 0 || len(e.a.take()) != 0 {
		t.Fatalf("webhooks did not move to the new callback (%d there)", moved.Load())
	}
	// Unknown fields and objects are refused in Meta's words.
	sub.Fields = []string{"messaging_seen"}
	wantGraphError(t, e.client.SetAppSubscription(ctx(), botA, appA, sub), 100, 0, "")
}

// An Instagram account lists and takes Instagram's field names, and its
// webhooks follow them.
func TestInstagramSubscribedFields(t *testing.T) {
	e := newEnv(t, func(c *messengertest.Config) { c.Pages[0].Platform = messengertest.PlatformInstagram })
	apps, err := e.client.SubscribedApps(ctx(), credA)
	if err != nil || len(apps) != 2 || !sameFields(apps[0].SubscribedFields, messenger.FieldsForInstagram) {
		t.Fatalf("apps %+v %v", apps, err)
	}
	wantGraphError(t, e.client.Subscribe(ctx(), credA, []string{"message_reads"}), 100, 0, "")
	if err := e.client.Subscribe(ctx(), credA, []string{"messaging_seen"}); err != nil {
		t.Fatal(err)
	}
	apps, _ = e.client.SubscribedApps(ctx(), credA)
	if !slices.Equal(apps[0].SubscribedFields, []string{"messaging_seen"}) {
		t.Fatalf("after: %+v", apps)
	}
	// Subscribed to reads only, bot-a hears nothing of a message.
	e.say("hi")
	e.settle()
	if got := e.a.take(); len(got) != 0 {
		t.Fatalf("bot-a got %d events", len(got))
	}
}

func sameFields(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
