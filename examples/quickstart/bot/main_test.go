package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

func TestBotRepliesAndHandsOver(t *testing.T) {
	p, err := messengertest.New(messengertest.Config{
		Apps:  []messengertest.AppConfig{{Name: "support-bot", ID: "512345678901234"}},
		Pages: []messengertest.PageConfig{{ID: "100", DefaultApp: "support-bot", Apps: map[string]messengertest.PageAppConfig{"support-bot": {Token: "T"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	if _, err := p.UserSends("100", "7", messengertest.UserMessage{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	g, _ := messenger.NewClient(messenger.ClientOptions{BaseURL: srv.URL})
	b := &Bot{Name: "support-bot", Graph: g, Token: "T"}

	deliver := func(text, channel string) []adapters.Action {
		ev, _ := json.Marshal(messenger.Event{Sender: &messenger.Party{ID: "7"}, Recipient: messenger.Party{ID: "100"}, Message: &messenger.Message{Mid: "m", Text: text}})
		return b.handle(context.Background(), &adapters.Delivery{PageID: "100", PSID: "7", Channel: channel, Kind: "message", Event: ev})
	}
	if a := deliver("hello", "messaging"); len(a) != 0 {
		t.Fatalf("actions %+v", a)
	}
	if a := deliver("I need a human", "messaging"); len(a) != 1 || a[0].Type != "pass" || a[0].To != "page-inbox" {
		t.Fatalf("actions %+v", a)
	}
	if a := deliver("billing?", "standby"); a != nil {
		t.Fatalf("acted on standby: %+v", a)
	}
	st, _ := p.Thread("100", "7")
	if len(st.Messages) != 3 || st.Messages[1].App != "support-bot" || st.Messages[2].Text != "Connecting you to a person." {
		t.Fatalf("messages %+v", st.Messages)
	}
}
