// Command bot is the quickstart's example bot: a small HTTP service behind
// Baton's http adapter. It checks Baton's Standard Webhooks signature,
// answers a person through the Graph API with its own page token, and
// hands the thread over by answering Baton with an action: "billing" goes
// to billing-bot, "human" to the Page Inbox, "done" releases.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/messenger"
)

func main() {
	name := flag.String("name", "support-bot", "the bot's app name in baton.yaml")
	listen := flag.String("listen", "127.0.0.1:9001", "address Baton delivers to")
	graph := flag.String("graph", "http://127.0.0.1:9090", "Graph API origin (the fake platform)")
	hookEnv := flag.String("hook-secret-env", "SUPPORT_BOT_HOOK_SECRET", "env var with the adapter secret")
	tokenEnv := flag.String("page-token-env", "PAGE_TOKEN_SUPPORT_BOT", "env var with the page access token")
	flag.Parse()

	key, err := webhook.Key(os.Getenv(*hookEnv))
	if err != nil {
		log.Fatalf("%s: %v", *hookEnv, err)
	}
	client, err := messenger.NewClient(messenger.ClientOptions{BaseURL: *graph})
	if err != nil {
		log.Fatal(err)
	}
	b := &Bot{Name: *name, Key: key, Graph: client, Token: os.Getenv(*tokenEnv)}
	log.Printf("%s listening on %s", *name, *listen)
	log.Fatal((&http.Server{Addr: *listen, Handler: b, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe())
}

// Bot answers deliveries from Baton.
type Bot struct {
	Name  string
	Key   []byte
	Graph *messenger.Client
	Token string
}

func (b *Bot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, err := webhook.Receive(b.Key, r, 1<<20, 5*time.Minute)
	if err != nil {
		var re *webhook.ReceiveError
		errors.As(err, &re)
		http.Error(w, err.Error(), re.Status)
		return
	}
	actions := b.handle(r.Context(), d)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"actions": actions})
}

// handle answers a person's message when the bot owns the conversation.
func (b *Bot) handle(ctx context.Context, d *adapters.Delivery) []adapters.Action {
	var ev messenger.Event
	if json.Unmarshal(d.Event, &ev) != nil || d.Channel != string(messenger.ChannelMessaging) || ev.Kind() != messenger.KindMessage {
		log.Printf("%s: %s %s (thread owner %q)", b.Name, d.Channel, d.Kind, d.Thread.Owner)
		return nil
	}
	text := strings.ToLower(ev.Message.Text)
	reply, actions := fmt.Sprintf("%s here. You said: %q. Say \"billing\", \"human\" or \"done\".", b.Name, ev.Message.Text), []adapters.Action(nil)
	switch {
	case strings.Contains(text, "billing") && b.Name != "billing-bot":
		reply, actions = "Passing you to billing.", []adapters.Action{{Type: "pass", To: "billing-bot", Metadata: "asked for billing"}}
	case strings.Contains(text, "human"):
		reply, actions = "Connecting you to a person.", []adapters.Action{{Type: "pass", To: "page-inbox", Metadata: "asked for a human"}}
	case strings.Contains(text, "done"):
		reply, actions = "Glad to help. Bye!", []adapters.Action{{Type: "release", Metadata: "done"}}
	}
	_, err := b.Graph.Send(ctx, messenger.Credentials{PageID: messenger.ID(d.PageID), AccessToken: b.Token},
		&messenger.SendRequest{Recipient: messenger.Recipient{ID: messenger.ID(d.PSID)}, MessagingType: messenger.MessagingTypeResponse,
			Message: &messenger.OutgoingMessage{Text: reply}})
	if err != nil {
		log.Printf("%s: send: %v", b.Name, err)
	}
	return actions
}
