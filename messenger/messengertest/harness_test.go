package messengertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// The tests in this package drive the fake only through HTTP: the Graph
// API with messenger.Client, and the /_platform/ control surface.

const (
	pageID    = "100200300400500"
	psid      = "7123456789012345"
	botA      = "512345678901234" // default app / primary
	botB      = "623456789012345"
	inboxID   = "263902037430900"
	tokenA    = "TOKEN_A"
	tokenB    = "TOKEN_B"
	secretA   = "secret-a"
	secretB   = "secret-b"
	wait      = 10 * time.Second
	longText  = 1001
	inboxName = messengertest.PageInboxName
)

// received is one event a bot got.
type received struct {
	Object  string
	EntryID messenger.ID
	Channel messenger.Channel
	Event   messenger.Event
	Body    []byte
}

// bot is a webhook receiver that checks Meta's signature on the raw bytes
// and records every event; fail makes it answer 500 that many times.
type bot struct {
	t      *testing.T
	secret string
	srv    *httptest.Server

	mu     sync.Mutex
	events []received
	posts  int
	fail   int
	// got is signalled after each POST whose events were recorded.
	got chan struct{}
}

func newBot(t *testing.T, secret string) *bot {
	b := &bot{t: t, secret: secret, got: make(chan struct{}, 1)}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *bot) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.posts++
	if b.fail > 0 {
		b.fail--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if err := messenger.Verify(r.Header, body, []byte(b.secret), messenger.VerifyOptions{}); err != nil {
		b.t.Errorf("bad signature from platform: %v", err)
	}
	if got, want := r.Header.Get(messenger.HeaderSignatureSHA1), messenger.SignSHA1([]byte(b.secret), body); got != want {
		b.t.Errorf("sha1 signature %q, want %q", got, want)
	}
	env, err := messenger.ParseWebhook(body)
	if err != nil {
		b.t.Errorf("platform sent an unusable body: %v\n%s", err, body)
		return
	}
	env.Each(func(en *messenger.Entry, ch messenger.Channel, ev *messenger.Event) {
		b.events = append(b.events, received{Object: env.Object, EntryID: en.ID, Channel: ch, Event: *ev, Body: body})
	})
	select {
	case b.got <- struct{}{}:
	default:
	}
}

// take returns and forgets what the bot received so far.
func (b *bot) take() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.events
	b.events = nil
	return out
}

func (b *bot) setFail(n int) {
	b.mu.Lock()
	b.fail = n
	b.mu.Unlock()
}

// env is one fake platform with two bots on one page.
type env struct {
	t      *testing.T
	p      *messengertest.Platform
	url    string
	a, b   *bot
	client *messenger.Client
}

type envOpt func(*messengertest.Config)

func withMode(m messengertest.Mode) envOpt {
	return func(c *messengertest.Config) {
		c.Pages[0].Mode = m
		if m == messengertest.ModeZeroConfig {
			c.Pages[0].DefaultApp = ""
		}
	}
}

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, a: newBot(t, secretA), b: newBot(t, secretB)}
	cfg := messengertest.Config{
		Apps: []messengertest.AppConfig{
			{Name: "bot-a", ID: botA, Secret: secretA, CallbackURL: e.a.srv.URL},
			{Name: "bot-b", ID: botB, Secret: secretB, CallbackURL: e.b.srv.URL},
		},
		Pages: []messengertest.PageConfig{{
			ID: pageID, Name: "Acme", Mode: messengertest.ModeConversationRouting, DefaultApp: "bot-a",
			Apps: map[string]messengertest.PageAppConfig{
				"bot-a": {Token: tokenA, Takeover: true},
				"bot-b": {Token: tokenB},
			},
		}},
		Settings: messengertest.Settings{WebhookRetryDelay: time.Millisecond},
	}
	for _, o := range opts {
		o(&cfg)
	}
	// A clock that moves only when told, so that durations are exact.
	p, err := messengertest.New(cfg, messengertest.WithClock(clock.NewManual(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	// Close the platform first: it releases the calls faults hold, which
	// srv.Close would wait for.
	t.Cleanup(func() { p.Close(); srv.Close() })
	e.p, e.url = p, srv.URL
	e.client, err = messenger.NewClient(messenger.ClientOptions{BaseURL: srv.URL, Version: "v21.0", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var (
	credA = messenger.Credentials{AccessToken: tokenA, AppSecret: secretA}
	credB = messenger.Credentials{PageID: pageID, AccessToken: tokenB}
)

// ctl calls the control surface and decodes the JSON answer into out.
func (e *env) ctl(method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// say makes the person write text and waits for the webhooks.
func (e *env) say(text string) string {
	e.t.Helper()
	var out struct{ Mid string }
	if st := e.ctl("POST", "/_platform/pages/"+pageID+"/users/"+psid+"/messages?wait=true", map[string]string{"text": text}, &out); st != 200 {
		e.t.Fatalf("user message: status %d", st)
	}
	return out.Mid
}

func (e *env) settle() {
	e.t.Helper()
	if st := e.ctl("POST", "/_platform/settle?timeout="+wait.String(), nil, nil); st != 200 {
		e.t.Fatalf("settle: %d", st)
	}
}

func (e *env) advance(d string) {
	e.t.Helper()
	if st := e.ctl("POST", "/_platform/clock", map[string]string{"advance": d}, nil); st != 200 {
		e.t.Fatalf("clock: %d", st)
	}
}

type truth struct {
	OwnerAppID        *string    `json:"owner_app_id"`
	OwnerApp          string     `json:"owner_app"`
	ExpiresAt         *time.Time `json:"expires_at"`
	LastUserMessageAt *time.Time `json:"last_user_message_at"`
	Messages          []messengertest.ThreadMessage
}

func (e *env) truth() truth {
	e.t.Helper()
	var tr truth
	if st := e.ctl("GET", "/_platform/pages/"+pageID+"/threads/"+psid, nil, &tr); st != 200 {
		e.t.Fatalf("thread: %d", st)
	}
	return tr
}

func (e *env) owner() string {
	e.t.Helper()
	if o := e.truth().OwnerAppID; o != nil {
		return *o
	}
	return ""
}

// wantGraphError checks err is Meta's error with exactly this code,
// subcode and message.
func wantGraphError(t *testing.T, err error, code, subcode int, msg string) {
	t.Helper()
	ge, ok := err.(*messenger.Error)
	if !ok {
		t.Fatalf("got %T %v, want *messenger.Error %d/%d", err, err, code, subcode)
	}
	if ge.Code != code || ge.Subcode != subcode || (msg != "" && ge.Message != msg) || ge.HTTPStatus != 400 || ge.Type != "OAuthException" || ge.FBTraceID == "" {
		t.Fatalf("got %+v, want %d/%d %q (http 400, OAuthException, fbtrace_id)", ge, code, subcode, msg)
	}
}

// kinds summarises what a bot received as "channel:kind" strings.
func kinds(rs []received) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s:%s", r.Channel, r.Event.Kind()))
	}
	return strings.Join(parts, " ")
}

func ctx() context.Context { return context.Background() }

// ctlGraph sends a raw Graph request.
func (e *env) ctlGraph(method, path, body string, out any) int {
	e.t.Helper()
	req := e.newRequest(method, path, body)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.do(req, out)
}

func (e *env) newRequest(method, path, body string) *http.Request {
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	return req
}

func (e *env) do(req *http.Request, out any) int {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}
