package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
	"github.com/batonhq/baton/orchestrator"
	"github.com/batonhq/baton/store/bolt"
)

// A deployment in miniature for baton subscribe and baton doctor: the
// fake platform as Meta, a real Baton behind a TLS proxy as the public
// listener at public_url, and a config that joins them.

const (
	setupPage   = "100200300400500"
	setupIGPage = "17841400000000001"
	setupAppID  = "512345678901234"
)

type setupEnv struct {
	fake   *messengertest.Platform
	public *httptest.Server // TLS in front of Baton
	config string
	client *messenger.Client // for a test's own Graph calls
}

// setupEnvVars are the secrets of the config; the page tokens are the
// fake's.
var setupEnvVars = map[string]string{
	"SETUP_ADMIN_TOKEN":  "admin-token-0123456789",
	"SETUP_APP_SECRET":   "app-secret-support",
	"SETUP_VERIFY_TOKEN": "verify-token-support",
	"SETUP_HOOK_SECRET":  "hook-secret-support",
	"SETUP_PAGE_TOKEN":   "page-token-support",
	"SETUP_IG_TOKEN":     "ig-token-support",
}

func setupFakeConfig() messengertest.Config {
	return messengertest.Config{
		Apps: []messengertest.AppConfig{{Name: "support-bot", ID: setupAppID, Secret: setupEnvVars["SETUP_APP_SECRET"]}},
		Pages: []messengertest.PageConfig{
			{ID: setupPage, Name: "Support", DefaultApp: "support-bot", Apps: map[string]messengertest.PageAppConfig{"support-bot": {Token: "page-token-support", Takeover: true}}},
			{ID: setupIGPage, Name: "support.ig", Platform: messengertest.PlatformInstagram, DefaultApp: "support-bot", Apps: map[string]messengertest.PageAppConfig{"support-bot": {Token: "ig-token-support"}}},
		},
	}
}

// newSetupEnv starts the fake (changed by mutate), Baton and the proxy,
// and writes the config with public_url at the proxy.
func newSetupEnv(t *testing.T, mutate func(*messengertest.Config)) *setupEnv {
	t.Helper()
	// Registered first, so it runs after every other cleanup: Baton, the
	// fake and the servers leave no goroutine behind.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, before,
			// Idle keep-alive connections of the test's HTTP clients.
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
	})
	for k, v := range setupEnvVars {
		t.Setenv(k, v)
	}
	var baton atomic.Pointer[url.URL]
	public := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := baton.Load()
		if u == nil {
			http.Error(w, "baton not started", http.StatusBadGateway)
			return
		}
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
	}))
	t.Cleanup(public.Close)

	fc := setupFakeConfig()
	if mutate != nil {
		mutate(&fc)
	}
	// The fake verifies callbacks at the proxy, which it must trust.
	fake, err := messengertest.New(fc, messengertest.WithHTTPClient(public.Client()))
	if err != nil {
		t.Fatal(err)
	}
	graph := httptest.NewServer(fake.Handler())
	t.Cleanup(graph.Close)
	t.Cleanup(fake.Close)

	dir := t.TempDir()
	write := func(name, publicURL string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, fmt.Appendf(nil, setupBatonYAML, publicURL, filepath.Join(dir, "baton.db"), graph.URL), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	startBaton(t, write("serve.yaml", ""), &baton)
	client, err := messenger.NewClient(messenger.ClientOptions{BaseURL: graph.URL, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &setupEnv{fake: fake, public: public, config: write("baton.yaml", public.URL), client: client}
}

const setupBatonYAML = `listen: "127.0.0.1:0"
public_url: "%s"
admin: {listen: "127.0.0.1:0", token_env: SETUP_ADMIN_TOKEN}
data: %q
graph: {url: %q}
apps:
  - name: support-bot
    app_id: "512345678901234"
    secret_env: SETUP_APP_SECRET
    verify_token_env: SETUP_VERIFY_TOKEN
    adapter: {type: http, url: "http://127.0.0.1:9/events", secret_env: SETUP_HOOK_SECRET}
  - name: page-inbox
    app_id: "263902037430900"
pages:
  - id: "100200300400500"
    primary: support-bot
    secondary: [page-inbox]
    tokens: {support-bot: {token_env: SETUP_PAGE_TOKEN}}
  - id: "17841400000000001"
    platform: instagram
    primary: support-bot
    tokens: {support-bot: {token_env: SETUP_IG_TOKEN}}
`

// startBaton runs Baton with the config at path until the test ends and
// points target at its public listener.
func startBaton(t *testing.T, path string, target *atomic.Pointer[url.URL]) {
	t.Helper()
	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cfg.Data, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := orchestrator.NewServer(cfg, db, orchestrator.ServerOptions{Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("baton: %v", err)
		}
		db.Close()
	})
	select {
	case <-srv.Listening():
	case err := <-done:
		t.Fatalf("baton: %v", err)
	}
	pub, _ := srv.Addrs()
	target.Store(&url.URL{Scheme: "http", Host: pub})
}

// subscribe runs baton subscribe with args after -config.
func (e *setupEnv) subscribe(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	code := run(context.Background(), append([]string{"subscribe", "-config", e.config}, args...), &stdout, &stderr)
	return code, stdout.String() + stderr.String()
}

// doctor runs baton doctor, trusting the proxy's certificate as Meta
// trusts a real one.
func (e *setupEnv) doctor(t *testing.T, configPath string) (string, error) {
	t.Helper()
	var stdout, stderr strings.Builder
	err := doctorWith(context.Background(), []string{"-config", configPath}, &stdout, &stderr, e.public.Client())
	return stdout.String() + stderr.String(), err
}

// fields is the app's subscription on a page, as Meta lists it.
func (e *setupEnv) fields(t *testing.T, page, token string) []string {
	t.Helper()
	apps, err := e.client.SubscribedApps(context.Background(), messenger.Credentials{PageID: messenger.ID(page), AccessToken: token})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		if a.ID == setupAppID {
			return a.SubscribedFields
		}
	}
	return nil
}

// setFields subscribes the app to a page with fields, as someone in the
// App Dashboard might have; none unsubscribes it.
func (e *setupEnv) setFields(t *testing.T, page, token string, fields ...string) {
	t.Helper()
	cred := messenger.Credentials{PageID: messenger.ID(page), AccessToken: token}
	var err error
	if len(fields) == 0 {
		_, _, err = e.client.Raw(context.Background(), http.MethodDelete, cred, "subscribed_apps", nil, nil)
	} else {
		err = e.client.Subscribe(context.Background(), cred, fields)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// posts counts the POSTs the fake received.
func (e *setupEnv) posts() int {
	n := 0
	for _, c := range e.fake.Calls() {
		if c.Method == http.MethodPost {
			n++
		}
	}
	return n
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("output lacks %q:\n%s", l, out)
		}
	}
}

// baton subscribe from nothing, then again, then after someone changed
// the fields; a dry run changes nothing.
func TestSubscribe(t *testing.T) {
	e := newSetupEnv(t, nil)
	e.setFields(t, setupPage, "page-token-support")
	e.setFields(t, setupIGPage, "ig-token-support")
	before := e.posts()

	code, out := e.subscribe(t, "-dry-run")
	callback := e.public.URL + "/webhooks/support-bot"
	wantLines(t, out,
		"page 100200300400500 app support-bot: not subscribed; would subscribe to "+strings.Join(messenger.FieldsForConversationRouting, ", "),
		"page 17841400000000001 app support-bot: not subscribed; would subscribe to "+strings.Join(messenger.FieldsForInstagram, ", "),
		"app support-bot webhooks (page): would set callback "+callback+"; add "+strings.Join(messenger.FieldsForConversationRouting, ", "),
		"app support-bot webhooks (instagram): would set callback "+callback,
		"dry run: nothing was changed")
	if code != 0 || e.posts() != before || e.fields(t, setupPage, "page-token-support") != nil {
		t.Fatalf("dry run: exit %d, %d POSTs, fields %v\n%s", code, e.posts()-before, e.fields(t, setupPage, "page-token-support"), out)
	}

	code, out = e.subscribe(t)
	wantLines(t, out,
		"page 100200300400500 app support-bot: not subscribed; subscribe to "+strings.Join(messenger.FieldsForConversationRouting, ", ")+": done",
		"page 17841400000000001 app support-bot: not subscribed; subscribe to "+strings.Join(messenger.FieldsForInstagram, ", ")+": done",
		"app support-bot webhooks (page): set callback "+callback+"; add ",
		"app support-bot webhooks (instagram): set callback "+callback)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if got := e.fields(t, setupPage, "page-token-support"); !sameSet(got, messenger.FieldsForConversationRouting) {
		t.Errorf("messenger fields %v", got)
	}
	if got := e.fields(t, setupIGPage, "ig-token-support"); !sameSet(got, messenger.FieldsForInstagram) {
		t.Errorf("instagram fields %v", got)
	}
	subs, err := e.client.AppSubscriptions(context.Background(), setupAppID, messenger.AppAccessToken(setupAppID, setupEnvVars["SETUP_APP_SECRET"]))
	if err != nil || len(subs) != 2 || subs[0].CallbackURL != callback || !sameSet(subs[0].Fields, messenger.FieldsForConversationRouting) {
		t.Errorf("app subscriptions %+v, %v", subs, err)
	}

	// Again: nothing to do, nothing sent.
	before = e.posts()
	code, out = e.subscribe(t)
	wantLines(t, out,
		"page 100200300400500 app support-bot: already right (9 fields)",
		"page 17841400000000001 app support-bot: already right (8 fields)",
		"app support-bot webhooks (page): already right (callback "+callback+")")
	if code != 0 || e.posts() != before {
		t.Fatalf("second run: exit %d, %d POSTs\n%s", code, e.posts()-before, out)
	}

	// Someone subscribed the app to other fields: put right.
	e.setFields(t, setupPage, "page-token-support", "messages", "messaging_policy_enforcement")
	code, out = e.subscribe(t)
	wantLines(t, out, "page 100200300400500 app support-bot: add messaging_postbacks, messaging_referrals, messaging_handovers, standby, message_echoes, message_reads, message_deliveries, messaging_optins; remove messaging_policy_enforcement: done")
	if got := e.fields(t, setupPage, "page-token-support"); code != 0 || !sameSet(got, messenger.FieldsForConversationRouting) {
		t.Fatalf("exit %d, fields %v\n%s", code, got, out)
	}
	// A field too many is only removed.
	e.setFields(t, setupIGPage, "ig-token-support", append(slices.Clone(messenger.FieldsForInstagram), "message_reactions")...)
	e.setFields(t, setupPage, "page-token-support", append(slices.Clone(messenger.FieldsForConversationRouting), "message_reactions")...)
	code, out = e.subscribe(t)
	wantLines(t, out, "page 100200300400500 app support-bot: remove message_reactions: done", "page 17841400000000001 app support-bot: already right")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// Meta's refusal is printed with its code and what to do; the other
// pages are still done, and the command fails.
func TestSubscribeRefused(t *testing.T) {
	e := newSetupEnv(t, func(c *messengertest.Config) {
		pa := c.Pages[0].Apps["support-bot"]
		pa.Scopes = []string{"pages_messaging"}
		c.Pages[0].Apps["support-bot"] = pa
	})
	code, out := e.subscribe(t)
	wantLines(t, out,
		"page 100200300400500 app support-bot: FAILED: read subscribed_apps: graph api: (#200) Requires pages_manage_metadata permission to manage the object (code 200, http 400",
		"what to do: the page token in SETUP_PAGE_TOKEN lacks a permission",
		"page 17841400000000001 app support-bot: already right (8 fields)",
		"baton subscribe: 1 of 4 subscription(s) failed")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// baton doctor: all ok on a deployment baton subscribe set up, then each
// failure it detects, with its FIX line.
func TestDoctor(t *testing.T) {
	cases := []struct {
		name   string
		fake   func(*messengertest.Config)
		before func(t *testing.T, e *setupEnv) string // returns the config doctor reads
		fix    []string
	}{
		{name: "all ok"},
		{
			name: "token of another page",
			before: func(t *testing.T, e *setupEnv) string {
				t.Setenv("SETUP_PAGE_TOKEN", "ig-token-support")
				return e.config
			},
			fix: []string{
				"FIX    page 100200300400500 app support-bot: page token: the token in SETUP_PAGE_TOKEN belongs to page 17841400000000001 (support.ig), not 100200300400500",
				"FIX    page 100200300400500 app support-bot: permissions: the token is for page 17841400000000001, not 100200300400500",
			},
		},
		{
			name: "missing scope",
			fake: func(c *messengertest.Config) {
				pa := c.Pages[1].Apps["support-bot"]
				pa.Scopes = []string{"instagram_basic", "pages_manage_metadata"}
				c.Pages[1].Apps["support-bot"] = pa
			},
			fix: []string{"FIX    page 17841400000000001 app support-bot: permissions: the token lacks instagram_manage_messages: grant the app these permissions"},
		},
		{
			name: "missing field",
			before: func(t *testing.T, e *setupEnv) string {
				e.setFields(t, setupPage, "page-token-support", "messages", "messaging_handovers")
				return e.config
			},
			fix: []string{"FIX    page 100200300400500 app support-bot: webhook fields: missing messaging_postbacks, messaging_referrals, standby, message_echoes, message_reads, message_deliveries, messaging_optins: run baton subscribe"},
		},
		{
			name: "conversation routing off",
			fake: func(c *messengertest.Config) { off := false; c.Pages[0].MultiApp = &off },
			fix:  []string{"FIX    page 100200300400500: conversation routing: msgr_multi_app is false: Conversation Routing is off; turn it on by choosing a default app in Page settings"},
		},
		{
			name: "baton not running",
			before: func(t *testing.T, e *setupEnv) string {
				b, _ := os.ReadFile(e.config)
				p := filepath.Join(t.TempDir(), "down.yaml")
				_ = os.WriteFile(p, []byte(strings.Replace(string(b), e.public.URL, "https://127.0.0.1:1", 1)), 0o600)
				return p
			},
			fix: []string{"FIX    app support-bot: webhook URL: https://127.0.0.1:1/webhooks/support-bot did not answer"},
		},
		{
			name: "verify token differs",
			before: func(t *testing.T, e *setupEnv) string {
				t.Setenv("SETUP_VERIFY_TOKEN", "another-verify-token")
				return e.config
			},
			fix: []string{"FIX    app support-bot: webhook URL: " + "https://127.0.0.1:", "refused the verify token (403): the Baton there has another value in SETUP_VERIFY_TOKEN"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newSetupEnv(t, tc.fake)
			if code, out := e.subscribe(t); code != 0 && tc.fake == nil {
				t.Fatalf("subscribe: exit %d\n%s", code, out)
			}
			cfg := e.config
			if tc.before != nil {
				cfg = tc.before(t, e)
			}
			out, err := e.doctor(t, cfg)
			wantLines(t, out, "MANUAL page 100200300400500: default app: config expects support-bot (app id 512345678901234) as the default app")
			if tc.fix == nil {
				if err != nil || strings.Contains(out, "FIX") {
					t.Fatalf("want all ok, got %v\n%s", err, out)
				}
				wantLines(t, out,
					"ok     page 100200300400500 app support-bot: page token: belongs to 100200300400500 (Support)",
					"ok     page 100200300400500 app support-bot: permissions: pages_messaging, pages_manage_metadata",
					"ok     page 17841400000000001 app support-bot: webhook fields: 8 fields",
					"ok     page 17841400000000001: conversation routing: ig_multi_app is true",
					"ok     app support-bot: webhook URL: "+e.public.URL+"/webhooks/support-bot answers the verification handshake")
				return
			}
			if err == nil {
				t.Fatalf("doctor passed:\n%s", out)
			}
			wantLines(t, out, tc.fix...)
		})
	}
}
