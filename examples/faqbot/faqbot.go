// Package faqbot is a small FAQ bot behind Baton's http adapter: it
// answers a few questions and otherwise says what it knows. It never hands
// a thread over itself: the page's escalation rule in baton.yaml does, on
// the words the bot is told to leave alone.
//
// It answers through Baton's Graph-compatible endpoint with its Baton
// token, as a bot built on any Messenger SDK would, so Baton checks each
// send against who owns the thread.
package faqbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/messenger"
)

// An Answer is said when a message has one of the words.
type Answer struct {
	Words []string
	Text  string
	// ByName puts the person's first name before the text's first "!"
	// ("Hi!" becomes "Hi Ada!"), read with the User Profile API through
	// Baton's /graph; without it when the name cannot be read.
	ByName bool
}

// DefaultAnswers are the demo shop's FAQ.
var DefaultAnswers = []Answer{
	{[]string{"hours", "open", "close"}, "We're open Monday to Friday, 9:00 to 18:00.", false},
	{[]string{"ship", "shipping", "delivery", "deliver"}, "Orders ship within one working day; delivery takes 2–4 days.", false},
	{[]string{"return", "refund"}, "You can return anything within 30 days for a full refund.", false},
	{[]string{"price", "cost", "pay"}, "Prices are on the website; we take cards and bank transfers.", false},
	{[]string{"hi", "hello", "hey"}, "Hi! I'm the shop's bot. Ask me about hours, shipping or returns, or write \"human\" to talk to a person.", true},
}

// Options configure a Bot.
type Options struct {
	HookSecret string   // the http adapter's secret
	Baton      string   // Baton's public URL
	Token      string   // the bot's Baton token
	Answers    []Answer // default DefaultAnswers
	// Quiet are words the bot does not answer: Baton's escalation rule
	// hands those messages to a person and says so.
	Quiet  []string
	Logger *log.Logger
}

// Bot answers deliveries from Baton.
type Bot struct {
	opt   Options
	key   []byte
	graph *messenger.Client
}

// New builds a Bot.
func New(opt Options) (*Bot, error) {
	key, err := webhook.Key(opt.HookSecret)
	if err != nil {
		return nil, fmt.Errorf("faqbot hook secret: %w", err)
	}
	g, err := messenger.NewClient(messenger.ClientOptions{BaseURL: strings.TrimSuffix(opt.Baton, "/") + "/graph"})
	if err != nil {
		return nil, fmt.Errorf("faqbot: %w", err)
	}
	if opt.Answers == nil {
		opt.Answers = DefaultAnswers
	}
	if opt.Logger == nil {
		opt.Logger = log.Default()
	}
	return &Bot{opt: opt, key: key, graph: g}, nil
}

func (b *Bot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, err := webhook.Receive(b.key, r, 2<<20, 5*time.Minute)
	if err != nil {
		var re *webhook.ReceiveError
		errors.As(err, &re)
		http.Error(w, err.Error(), re.Status)
		return
	}
	var ev messenger.Event
	if err := json.Unmarshal(d.Event, &ev); err != nil {
		http.Error(w, "not an event", http.StatusBadRequest)
		return
	}
	if d.Channel != string(messenger.ChannelMessaging) || ev.Kind() != messenger.KindMessage {
		w.WriteHeader(http.StatusNoContent) // standby copies, echoes, handovers: nothing to say
		return
	}
	a, ok := b.match(ev.Message.Text)
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	reply := a.Text
	if a.ByName {
		if name := b.firstName(r.Context(), d.PSID); name != "" {
			reply = strings.Replace(reply, "!", " "+name+"!", 1)
		}
	}
	if err := b.say(r.Context(), d.PageID, d.PSID, reply); err != nil {
		// Baton refuses a send when the bot no longer owns the thread;
		// anything else is worth a retry of the delivery.
		b.opt.Logger.Printf("faqbot: send to %s: %v", d.PSID, err)
		var me *messenger.Error
		if !errors.As(err, &me) || me.HTTPStatus >= 500 {
			http.Error(w, "send failed", http.StatusServiceUnavailable)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Answer is what the bot says to text, without the person's name; empty
// for the quiet words.
func (b *Bot) Answer(text string) string {
	a, _ := b.match(text)
	return a.Text
}

// match finds the answer to text; false for the quiet words.
func (b *Bot) match(text string) (Answer, bool) {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127)
	})
	has := func(set []string) bool {
		for _, w := range words {
			for _, s := range set {
				if w == s {
					return true
				}
			}
		}
		return false
	}
	if has(b.opt.Quiet) {
		return Answer{}, false
	}
	for _, a := range b.opt.Answers {
		if has(a.Words) {
			return a, true
		}
	}
	return Answer{Text: "I can tell you about our hours, shipping and returns. Write \"human\" to talk to a person."}, true
}

// firstName reads the person's first name: GET /{psid}?fields=first_name,
// which Baton's /graph answers with the page's token for the page it has
// the person's thread on. Empty when it cannot be read.
func (b *Bot) firstName(ctx context.Context, psid string) string {
	status, raw, err := b.graph.Raw(ctx, http.MethodGet, messenger.Credentials{PageID: messenger.ID(psid), AccessToken: b.opt.Token}, "", url.Values{"fields": {"first_name"}}, nil)
	var p struct {
		FirstName string `json:"first_name"`
	}
	if err != nil || status != http.StatusOK || json.Unmarshal(raw, &p) != nil {
		b.opt.Logger.Printf("faqbot: profile of %s: status %d %v", psid, status, err)
		return ""
	}
	return p.FirstName
}

func (b *Bot) say(ctx context.Context, page, psid, text string) error {
	_, err := b.graph.Send(ctx, messenger.Credentials{PageID: messenger.ID(page), AccessToken: b.opt.Token},
		&messenger.SendRequest{Recipient: messenger.Recipient{ID: messenger.ID(psid)}, MessagingType: messenger.MessagingTypeResponse,
			Message: &messenger.OutgoingMessage{Text: text}})
	return err
}
