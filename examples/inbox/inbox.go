// Package inbox is a small human-agent inbox: a hosted secondary app behind
// Baton's http adapter. Agents see the conversations handed to the inbox,
// newest first, with the metadata that said why and the recent messages
// (also those from before the handover: the app takes standby copies);
// they reply through Baton's Graph-compatible endpoint with the inbox's
// Baton token, and press Done to give the thread back. Every open page
// updates live over server-sent events, so several agents can share it.
//
// It keeps conversations in memory: it is an example, and Baton keeps the
// durable record of who owns each thread.
package inbox

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/messenger"
)

//go:embed static
var static embed.FS

// Done actions.
const (
	DonePass    = "pass"    // pass the thread to the page's default app
	DoneRelease = "release" // release it to idle
)

// Options configure an Inbox.
type Options struct {
	App        string // the inbox's app name in baton.yaml
	AppID      string // its Facebook app id: tells the agents' echoes from the bot's
	HookSecret string // the http adapter's secret (whsec_...)
	Baton      string // Baton's public URL
	Token      string // the inbox app's Baton token (its token_env)
	Done       string // DonePass (default) or DoneRelease
	HTTPClient *http.Client
}

// Conversation is one person's thread as agents see it.
type Conversation struct {
	PageID    string    `json:"page_id"`
	PSID      string    `json:"psid"`
	Assigned  bool      `json:"assigned"` // the inbox owns it and nobody pressed Done
	Owner     string    `json:"owner"`    // Baton's owner, by app name
	Why       string    `json:"why,omitempty"`
	HandedAt  time.Time `json:"handed_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
	Messages  []Message `json:"messages"`
}

// Message is one message of a conversation.
type Message struct {
	Mid  string    `json:"mid,omitempty"`
	At   time.Time `json:"at"`
	From string    `json:"from"` // person, bot, agent
	Text string    `json:"text"`
}

const (
	maxMessages      = 100
	maxConversations = 1000
	maxSeen          = 10000
)

// Inbox is the web application.
type Inbox struct {
	opt  Options
	key  []byte
	http *http.Client

	mu    sync.Mutex
	convs map[string]*Conversation
	seen  map[string]bool // delivery ids and mids, against Baton's redeliveries
	order []string        // of seen, oldest first, to forget
	subs  map[chan struct{}]bool
	done  chan struct{}
}

// New builds an Inbox.
func New(opt Options) (*Inbox, error) {
	key, err := webhook.Key(opt.HookSecret)
	if err != nil {
		return nil, fmt.Errorf("inbox hook secret: %w", err)
	}
	if opt.Done == "" {
		opt.Done = DonePass
	}
	if opt.Done != DonePass && opt.Done != DoneRelease {
		return nil, fmt.Errorf("inbox: done is %q, not pass or release", opt.Done)
	}
	if _, err := url.Parse(opt.Baton); err != nil || opt.Baton == "" {
		return nil, fmt.Errorf("inbox: Baton URL %q: %v", opt.Baton, err)
	}
	c := opt.HTTPClient
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second}
	}
	return &Inbox{opt: opt, key: key, http: c, convs: map[string]*Conversation{}, seen: map[string]bool{},
		subs: map[chan struct{}]bool{}, done: make(chan struct{})}, nil
}

// Close ends the live streams, so that a server can shut down.
func (in *Inbox) Close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	select {
	case <-in.done:
	default:
		close(in.done)
	}
}

// Handler serves the deliveries from Baton (POST /baton), the page and
// its API.
func (in *Inbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /baton", in.receive)
	mux.HandleFunc("GET /api/conversations", in.list)
	mux.HandleFunc("GET /api/events", in.events)
	mux.HandleFunc("POST /api/conversations/{page}/{psid}/reply", in.reply)
	mux.HandleFunc("POST /api/conversations/{page}/{psid}/done", in.finish)
	mux.Handle("GET /", http.FileServerFS(mustSub(static, "static")))
	return mux
}

// receive takes one delivery from Baton.
func (in *Inbox) receive(w http.ResponseWriter, r *http.Request) {
	d, err := webhook.Receive(in.key, r, 2<<20, 5*time.Minute)
	if err != nil {
		var re *webhook.ReceiveError
		errors.As(err, &re)
		http.Error(w, err.Error(), re.Status) // a 400 is a dead letter in Baton: nothing lost
		return
	}
	var ev messenger.Event
	if err := json.Unmarshal(d.Event, &ev); err != nil {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	if d.PSID != "" {
		in.apply(d, &ev)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (in *Inbox) apply(d *adapters.Delivery, ev *messenger.Event) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.markLocked("d:" + d.ID) {
		return
	}
	c := in.convLocked(d.PageID, d.PSID)
	at := time.Now()
	if ev.Timestamp > 0 {
		at = time.UnixMilli(ev.Timestamp)
	}
	c.UpdatedAt = at
	c.Owner = d.Thread.Owner
	switch ev.Kind() {
	case messenger.KindMessage:
		in.addLocked(c, Message{Mid: ev.Message.Mid, At: at, From: "person", Text: messageText(ev.Message)})
	case messenger.KindEcho:
		from := "bot"
		if string(ev.Message.AppID) == in.opt.AppID || ev.Message.AppID == messenger.PageInboxAppID {
			from = "agent"
		}
		in.addLocked(c, Message{Mid: ev.Message.Mid, At: at, From: from, Text: messageText(ev.Message)})
	case messenger.KindPostback:
		in.addLocked(c, Message{Mid: ev.Postback.Mid, At: at, From: "person", Text: "[tapped] " + ev.Postback.Title})
	case messenger.KindPassThreadControl:
		if string(ev.PassThreadControl.NewOwnerAppID) == in.opt.AppID {
			c.Assigned, c.HandedAt, c.Why = true, at, ev.PassThreadControl.Metadata
		}
	}
	// Baton's view of the owner settles it: a thread the return rule or
	// another app took away leaves the list with its next event.
	switch {
	case d.Thread.Owner == in.opt.App && !c.Assigned:
		c.Assigned, c.HandedAt = true, at
	case d.Thread.Owner != in.opt.App:
		c.Assigned = false
	}
	in.notifyLocked()
}

func messageText(m *messenger.Message) string {
	if m.Text != "" {
		return m.Text
	}
	if len(m.Attachments) > 0 {
		return "[" + m.Attachments[0].Type + "]"
	}
	return "[message]"
}

// markLocked records an id and reports whether it is new.
func (in *Inbox) markLocked(id string) bool {
	if in.seen[id] {
		return false
	}
	in.seen[id] = true
	in.order = append(in.order, id)
	if len(in.order) > maxSeen {
		delete(in.seen, in.order[0])
		in.order = in.order[1:]
	}
	return true
}

func (in *Inbox) convLocked(page, psid string) *Conversation {
	k := page + "/" + psid
	c := in.convs[k]
	if c == nil {
		if len(in.convs) >= maxConversations {
			in.forgetOldestLocked()
		}
		c = &Conversation{PageID: page, PSID: psid, Messages: []Message{}}
		in.convs[k] = c
	}
	return c
}

func (in *Inbox) forgetOldestLocked() {
	var oldest string
	var at time.Time
	for k, c := range in.convs {
		if !c.Assigned && (oldest == "" || c.UpdatedAt.Before(at)) {
			oldest, at = k, c.UpdatedAt
		}
	}
	delete(in.convs, oldest)
}

func (in *Inbox) addLocked(c *Conversation, m Message) {
	if m.Mid != "" && !in.markLocked("m:"+m.Mid) {
		return // our own reply, already shown, or a redelivery
	}
	c.Messages = append(c.Messages, m)
	if len(c.Messages) > maxMessages {
		c.Messages = c.Messages[len(c.Messages)-maxMessages:]
	}
}

func (in *Inbox) notifyLocked() {
	for ch := range in.subs {
		select {
		case ch <- struct{}{}:
		default: // an update is already waiting for this agent
		}
	}
}

// list answers the conversations handed to the inbox, newest handover
// first.
func (in *Inbox) list(w http.ResponseWriter, _ *http.Request) {
	in.mu.Lock()
	out := []Conversation{}
	for _, c := range in.convs {
		if c.Assigned {
			cc := *c
			cc.Messages = append([]Message(nil), c.Messages...)
			out = append(out, cc)
		}
	}
	in.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].HandedAt.After(out[j].HandedAt) })
	writeJSON(w, http.StatusOK, out)
}

// events streams "update" whenever a conversation changes.
func (in *Inbox) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch := make(chan struct{}, 1)
	in.mu.Lock()
	in.subs[ch] = true
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		delete(in.subs, ch)
		in.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	send := func(s string) bool {
		if _, err := io.WriteString(w, s); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send("event: update\ndata: {}\n\n") {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-in.done:
			return
		case <-ping.C:
			if !send(": ping\n\n") {
				return
			}
		case <-ch:
			if !send("event: update\ndata: {}\n\n") {
				return
			}
		}
	}
}

// reply sends an agent's text through Baton, as the inbox app.
func (in *Inbox) reply(w http.ResponseWriter, r *http.Request) {
	page, psid := r.PathValue("page"), r.PathValue("psid")
	var b struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&b); err != nil || strings.TrimSpace(b.Text) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "a reply needs text"})
		return
	}
	var sent struct {
		MessageID string `json:"message_id"`
	}
	err := in.call(r.Context(), "/graph/v21.0/"+url.PathEscape(page)+"/messages", map[string]any{
		"recipient": map[string]string{"id": psid}, "messaging_type": "RESPONSE", "message": map[string]string{"text": b.Text},
	}, &sent)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	in.mu.Lock()
	c := in.convLocked(page, psid)
	in.addLocked(c, Message{Mid: sent.MessageID, At: time.Now(), From: "agent", Text: b.Text})
	c.UpdatedAt = time.Now()
	in.notifyLocked()
	in.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"message_id": sent.MessageID})
}

// finish gives the thread back, as the config says.
func (in *Inbox) finish(w http.ResponseWriter, r *http.Request) {
	page, psid := r.PathValue("page"), r.PathValue("psid")
	path := fmt.Sprintf("/v1/threads/%s/%s/%s", url.PathEscape(page), url.PathEscape(psid), in.opt.Done)
	var th struct {
		Owner string `json:"owner"`
	}
	if err := in.call(r.Context(), path, map[string]string{"metadata": "done in the inbox"}, &th); err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	in.mu.Lock()
	c := in.convLocked(page, psid)
	c.Assigned, c.Owner = false, th.Owner
	in.notifyLocked()
	in.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"owner": th.Owner})
}

// call POSTs JSON to Baton with the inbox's token and decodes the answer;
// an error carries Baton's (or Meta's) message.
func (in *Inbox) call(ctx context.Context, path string, body, out any) error {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(in.opt.Baton, "/")+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+in.opt.Token)
	resp, err := in.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach Baton: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		// Baton's errors and Meta's envelope (passed through by /graph)
		// both say {"error":{"message":...}}.
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(answer, &e) == nil && e.Error.Message != "" {
			return errors.New(e.Error.Message)
		}
		return fmt.Errorf("unexpected answer from Baton: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(answer, out)
	}
	return nil
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the embed pattern names dir: cannot happen
	}
	return sub
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
