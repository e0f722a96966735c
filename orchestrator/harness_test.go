package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger/messengertest"
	"github.com/batonhq/baton/orchestrator"
	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/store/bolt"
)

const (
	pageID     = "100200300400500"
	psid       = "7123456789012345"
	supportID  = "512345678901234"
	billingID  = "623456789012345"
	inboxID    = "263902037430900"
	adminToken = "admin-secret-0123456789"
)

var env = map[string]string{
	"BATON_ADMIN_TOKEN":  adminToken,
	"SUPPORT_SECRET":     "support-app-secret",
	"SUPPORT_VERIFY":     "support-verify",
	"SUPPORT_API":        "support-api-token",
	"SUPPORT_HOOK":       "support-hook-secret",
	"BILLING_SECRET":     "billing-app-secret",
	"BILLING_VERIFY":     "billing-verify",
	"BILLING_API":        "billing-api-token",
	"BILLING_HOOK":       "billing-hook-secret",
	"PAGE_TOKEN_SUPPORT": "PT_SUPPORT",
	"PAGE_TOKEN_BILLING": "PT_BILLING",
	// A second page's tokens (property_test.go): the platform takes a
	// token for one (page, app) only.
	"PAGE_TOKEN_SUPPORT_2": "PT_SUPPORT_2",
	"PAGE_TOKEN_BILLING_2": "PT_BILLING_2",
}

// bot is a recording bot behind Baton's http adapter: it checks the
// Standard Webhooks signature and answers with respond.
type bot struct {
	t       *testing.T
	key     []byte
	srv     *httptest.Server
	got     chan adapters.Delivery
	mu      sync.Mutex
	respond func(d adapters.Delivery) (int, string)
	// respondH, when set, answers with headers too.
	respondH func(d adapters.Delivery) (int, http.Header, string)
	all      []adapters.Delivery
}

func newBot(t *testing.T, secret string) *bot {
	key, _ := webhook.Key(secret)
	b := &bot{t: t, key: key, got: make(chan adapters.Delivery, 1000)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(b.key, r.Header, body, time.Now(), time.Hour); err != nil {
			t.Errorf("bot: %v", err)
		}
		var d adapters.Delivery
		if err := json.Unmarshal(body, &d); err != nil {
			t.Errorf("bot: %v", err)
		}
		b.mu.Lock()
		respond, respondH := b.respond, b.respondH
		b.mu.Unlock()
		status, answer := 200, ""
		if respond != nil {
			status, answer = respond(d)
		}
		if respondH != nil {
			var hdr http.Header
			status, hdr, answer = respondH(d)
			for k, vs := range hdr {
				w.Header()[k] = vs
			}
		}
		if status/100 == 2 {
			b.mu.Lock()
			b.all = append(b.all, d)
			b.mu.Unlock()
			b.got <- d
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *bot) setRespond(f func(d adapters.Delivery) (int, string)) {
	b.mu.Lock()
	b.respond, b.respondH = f, nil
	b.mu.Unlock()
}

// setRespondWithHeader is setRespond with headers on the answer
// (Retry-After).
func (b *bot) setRespondWithHeader(f func(d adapters.Delivery) (int, http.Header, string)) {
	b.mu.Lock()
	b.respond, b.respondH = nil, f
	b.mu.Unlock()
}

// next waits for the bot's next delivery: the signal tests wait on.
func (b *bot) next() adapters.Delivery {
	b.t.Helper()
	select {
	case d := <-b.got:
		return d
	case <-time.After(15 * time.Second):
		b.t.Fatal("bot got nothing in 15s")
		return adapters.Delivery{}
	}
}

// none checks that nothing else arrived once the platform settled.
func (b *bot) none(h *harness) {
	b.t.Helper()
	h.settle()
	select {
	case d := <-b.got:
		b.t.Fatalf("unexpected delivery %s %s %s", d.Channel, d.Kind, d.Event)
	default:
	}
}

func text(d adapters.Delivery) string {
	var ev struct {
		Message struct{ Text string } `json:"message"`
	}
	_ = json.Unmarshal(d.Event, &ev)
	return ev.Message.Text
}

type harness struct {
	t        *testing.T
	clock    *clock.Manual
	platform *messengertest.Platform
	platURL  string
	baton    string // public URL
	admin    string // admin URL
	support  *bot
	billing  *bot
	cfg      *config.Config
	stop     func()
	// client talks to Baton: http.DefaultClient, or one that trusts the
	// test CA when Baton serves TLS (tls_test.go).
	client *http.Client
}

type harnessOpt func(yaml *string)

// newHarness starts the fake platform, Baton on a bbolt file in a temp dir
// and two bots, all on loopback.
func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	return newHarnessWith(t, nil, opts...)
}

// newHarnessWith is newHarness with platform, when not nil, changing the
// fake platform's config (its settings, its pages) before it starts.
func newHarnessWith(t *testing.T, platform func(*messengertest.Config), opts ...harnessOpt) *harness {
	h := &harness{t: t, clock: clock.NewManual(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))}
	h.support, h.billing = newBot(t, env["SUPPORT_HOOK"]), newBot(t, env["BILLING_HOOK"])
	var platHandler http.Handler = http.NotFoundHandler()
	var phMu sync.Mutex
	plat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		phMu.Lock()
		hd := platHandler
		phMu.Unlock()
		hd.ServeHTTP(w, r)
	}))
	t.Cleanup(plat.Close)
	h.platURL = plat.URL

	yaml := fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0", token_env: BATON_ADMIN_TOKEN}
data: %q
graph: {url: %q, version: "v21.0"}
delivery: {backoff: 20ms, max_backoff: 200ms, max_attempts: 5}
apps:
  - name: support-bot
    app_id: "%s"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    token_env: SUPPORT_API
    adapter: {type: http, url: %q, secret_env: SUPPORT_HOOK, standby: true}
  - name: billing-bot
    app_id: "%s"
    secret_env: BILLING_SECRET
    verify_token_env: BILLING_VERIFY
    token_env: BILLING_API
    adapter: {type: http, url: %q, secret_env: BILLING_HOOK}
  - name: page-inbox
    app_id: "%s"
pages:
  - id: "%s"
    mode: conversation_routing
    primary: support-bot
    secondary: [billing-bot, page-inbox]
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT}
      billing-bot: {token_env: PAGE_TOKEN_BILLING}
`, filepath.Join(t.TempDir(), "baton.db"), plat.URL, supportID, h.support.srv.URL, billingID, h.billing.srv.URL, inboxID, pageID)
	for _, o := range opts {
		o(&yaml)
	}
	mode := messengertest.ModeConversationRouting
	if strings.Contains(yaml, "mode: legacy") {
		mode = messengertest.ModeLegacy
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	h.cfg = cfg
	h.client = http.DefaultClient
	var platOpts []messengertest.Option
	if cfg.TLS != nil {
		h.client = tlsClient(t, cfg.TLS)
		platOpts = append(platOpts, messengertest.WithHTTPClient(h.client)) // Meta's webhooks over https
	}
	h.startBaton()

	pcfg := messengertest.Config{
		Apps: []messengertest.AppConfig{
			{Name: "support-bot", ID: supportID, Secret: env["SUPPORT_SECRET"], VerifyToken: env["SUPPORT_VERIFY"], CallbackURL: h.baton + "/webhooks/support-bot"},
			{Name: "billing-bot", ID: billingID, Secret: env["BILLING_SECRET"], VerifyToken: env["BILLING_VERIFY"], CallbackURL: h.baton + "/webhooks/billing-bot"},
		},
		Pages: []messengertest.PageConfig{{ID: pageID, Mode: mode, DefaultApp: "support-bot",
			Apps: map[string]messengertest.PageAppConfig{"support-bot": {Token: "PT_SUPPORT", Takeover: true}, "billing-bot": {Token: "PT_BILLING"}}}},
		Settings: messengertest.Settings{WebhookRetryDelay: 10 * time.Millisecond},
	}
	if platform != nil {
		platform(&pcfg)
	}
	p, err := messengertest.New(pcfg, append(platOpts, messengertest.WithClock(h.clock))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	phMu.Lock()
	platHandler = p.Handler()
	phMu.Unlock()
	h.platform = p
	return h
}

func (h *harness) startBaton() {
	db := mustOpenStore(h.t, h.cfg.Data)
	srv, err := orchestrator.NewServer(h.cfg, db, orchestrator.ServerOptions{Clock: h.clock})
	if err != nil {
		db.Close()
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Listening():
	case err := <-done:
		h.t.Fatalf("baton did not start: %v", err)
	}
	select {
	case <-srv.O.Ready():
	case err := <-done:
		h.t.Fatalf("baton stopped before it was ready: %v", err)
	}
	pub, adm := srv.Addrs()
	h.baton, h.admin = "http://"+pub, "http://"+adm
	if h.cfg.TLS != nil {
		h.baton = "https://" + tlsHost(h.cfg.TLS, pub)
		if h.cfg.Admin.TLS {
			h.admin = "https://" + tlsHost(h.cfg.TLS, adm)
		}
	}
	h.cfg.Listen, h.cfg.Admin.Listen = pub, adm // a restart binds the same ports
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("baton stopped with %v", err)
		}
		if err := db.Close(); err != nil {
			h.t.Errorf("close store: %v", err)
		}
	}
	h.t.Cleanup(h.stop)
}

// mustOpenStore opens the bbolt file at path, as baton serve does.
func mustOpenStore(tb testing.TB, path string) *bolt.DB {
	tb.Helper()
	db, err := bolt.Open(path, bolt.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

func (h *harness) settle() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := h.platform.Settle(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// do sends a JSON request and decodes the JSON answer.
func (h *harness) do(method, url, token string, body, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

func (h *harness) say(text string) {
	h.t.Helper()
	if st := h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/users/"+psid+"/messages?wait=true", "", map[string]string{"text": text}, nil); st != 200 {
		h.t.Fatalf("say: %d", st)
	}
}

func (h *harness) batonThread() api.ThreadView {
	h.t.Helper()
	var tv api.ThreadView
	if st := h.do("GET", h.admin+"/admin/threads/"+pageID+"/"+psid, adminToken, nil, &tv); st != 200 {
		h.t.Fatalf("admin thread: %d", st)
	}
	return tv
}

func (h *harness) platformOwner() string {
	st, _ := h.platform.Thread(pageID, psid)
	if st.OwnerAppID == nil {
		return ""
	}
	return string(*st.OwnerAppID)
}

// eventually waits for cond, checking often; it is a bounded wait on a
// condition no event announces (a timer firing inside Baton).
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = os.Getenv

// legacyPage makes the harness's page a legacy Handover Protocol page, in
// Baton and on the platform.
func legacyPage(yaml *string) {
	*yaml = strings.Replace(*yaml, "mode: conversation_routing", "mode: legacy", 1)
}
