package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/examples/faqbot"
	"github.com/batonhq/baton/inbox"
	"github.com/batonhq/baton/messenger/messengertest"
	"github.com/batonhq/baton/orchestrator"
)

// The demo's fixed identities: one page and the shop's Instagram account,
// a FAQ bot as the default app of both, the example inbox as a hosted
// secondary, and Meta's own inboxes.
const (
	demoPage       = "100200300400500"
	demoIG         = "17841400100200300"
	demoIGInbox    = "1217981644879628"
	demoBotID      = "512345678901234"
	demoInboxID    = "734567890123456"
	demoPageInbox  = "263902037430900"
	demoPersonPSID = "7123456789012345"
)

// demoOptions are the addresses the demo binds; "127.0.0.1:0" picks a
// free port (the tests do).
type demoOptions struct {
	Platform, Public, Admin, Bot, Inbox string
	Dir                                 string // data, config and logs; empty: a temp dir removed at exit
	ReturnAfter                         time.Duration
	// The inbox's holds and warning (the config's defaults when zero),
	// and how often it asks Baton about its conversations.
	TypingHold, ClaimHold, WarnBefore time.Duration
	InboxRefresh                      time.Duration
}

// demo is everything `baton demo` runs, in one process.
type demo struct {
	dir, config           string
	ownDir                bool
	platformURL, batonURL string
	adminURL, inboxURL    string
	adminToken            string
	env                   map[string]string // the secrets the demo made, by variable
	clock                 *clock.Offset
	platform              *messengertest.Platform
	logFile               *os.File
	// passwords are the demo agents' passwords, by name.
	passwords map[string]string

	// The inbox runs on its own, so that a test can restart it.
	inboxOpt    inbox.Options
	inboxAddr   string
	stopInbox   context.CancelFunc
	inboxDone   chan error
	platformSrv *http.Server
	botSrv      *http.Server
	stopBaton   context.CancelFunc
	batonDone   chan error
	serveErrs   chan error
	stopOnce    sync.Once
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o demoOptions
	fs.StringVar(&o.Platform, "platform", "127.0.0.1:9090", "fake Messenger platform address")
	fs.StringVar(&o.Public, "listen", "127.0.0.1:8080", "Baton's public address")
	fs.StringVar(&o.Admin, "admin", "127.0.0.1:8081", "Baton's admin address")
	fs.StringVar(&o.Bot, "bot", "127.0.0.1:9001", "the FAQ bot's address")
	fs.StringVar(&o.Inbox, "inbox", "127.0.0.1:9003", "the inbox's address")
	fs.StringVar(&o.Dir, "dir", "", "keep the data, config and logs here (default: a temp dir removed at exit)")
	fs.DurationVar(&o.ReturnAfter, "return-after", 10*time.Minute, "the return rule: an idle inbox thread goes back to the bot after this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := startDemo(o)
	if err != nil {
		return err
	}
	d.banner(stdout)
	return d.wait(ctx)
}

// startDemo writes the config, binds every address and starts everything.
func startDemo(o demoOptions) (d *demo, err error) {
	d = &demo{batonDone: make(chan error, 1), serveErrs: make(chan error, 4), passwords: map[string]string{}}
	// Listeners not yet served are closed on failure; closing one a
	// server has already closed is harmless.
	var listeners []net.Listener
	defer func() {
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			d.stop()
		}
	}()
	if d.dir = o.Dir; d.dir == "" {
		if d.dir, err = os.MkdirTemp("", "baton-demo-"); err != nil {
			return d, err
		}
		d.ownDir = true
	} else if err = os.MkdirAll(d.dir, 0o700); err != nil {
		return d, err
	}
	listen := func(addr string) (net.Listener, string, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, "", fmt.Errorf("listen %s: %w (is another demo running? pick other addresses with the flags)", addr, err)
		}
		listeners = append(listeners, l)
		return l, "http://" + l.Addr().String(), nil
	}
	var pl, bl, al, botl, inl net.Listener
	var botURL string
	for _, step := range []struct {
		l    *net.Listener
		url  *string
		addr string
	}{{&pl, &d.platformURL, o.Platform}, {&bl, &d.batonURL, o.Public}, {&al, &d.adminURL, o.Admin}, {&botl, &botURL, o.Bot}, {&inl, &d.inboxURL, o.Inbox}} {
		if *step.l, *step.url, err = listen(step.addr); err != nil {
			return d, err
		}
	}

	env := map[string]string{}
	d.env = env
	secret := func(name string, n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		env[name] = hex.EncodeToString(b)
		return env[name]
	}
	hook := func(name string) {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		env[name] = "whsec_" + base64.StdEncoding.EncodeToString(b)
	}
	d.adminToken = secret("BATON_ADMIN_TOKEN", 16)
	botSecret, inboxSecret := secret("FAQ_BOT_SECRET", 16), secret("INBOX_SECRET", 16)
	botVerify, inboxVerify := secret("FAQ_BOT_VERIFY_TOKEN", 8), secret("INBOX_VERIFY_TOKEN", 8)
	botPageToken, inboxPageToken := secret("PAGE_TOKEN_FAQ_BOT", 24), secret("PAGE_TOKEN_INBOX", 24)
	botIGToken, inboxIGToken := secret("IG_TOKEN_FAQ_BOT", 24), secret("IG_TOKEN_INBOX", 24)
	secret("FAQ_BOT_API_TOKEN", 16)
	secret("INBOX_API_TOKEN", 16)
	hook("FAQ_BOT_HOOK_SECRET")
	hook("INBOX_HOOK_SECRET")
	hashes := map[string]string{}
	for _, name := range []string{"anna", "ben"} {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		d.passwords[name] = hex.EncodeToString(b)
		h, err := bcrypt.GenerateFromPassword([]byte(d.passwords[name]), bcrypt.DefaultCost)
		if err != nil {
			return d, err
		}
		hashes[name] = string(h)
	}
	hold := func(v time.Duration, def time.Duration) string {
		if v == 0 {
			v = def
		}
		return v.String()
	}

	var yml bytes.Buffer
	if err = demoConfig.Execute(&yml, map[string]any{
		"Public": bl.Addr().String(), "Admin": al.Addr().String(), "Data": filepath.Join(d.dir, "baton.db"),
		"Platform": d.platformURL, "Bot": botURL, "Inbox": d.inboxURL, "ReturnAfter": o.ReturnAfter.String(),
		"Words": strings.Join(demoEscalationWords, ", "), "Page": demoPage, "BotID": demoBotID, "InboxID": demoInboxID, "PageInbox": demoPageInbox,
		"IG": demoIG, "IGInbox": demoIGInbox, "InboxListen": inl.Addr().String(), "InboxData": filepath.Join(d.dir, "inbox.db"),
		"Baton": d.batonURL, "AnnaHash": hashes["anna"], "BenHash": hashes["ben"],
		"TypingHold": hold(o.TypingHold, config.DefaultTypingHold), "ClaimHold": hold(o.ClaimHold, config.DefaultClaimHold),
		"WarnBefore": hold(o.WarnBefore, config.DefaultWarnBefore),
	}); err != nil {
		return d, err
	}
	d.config = filepath.Join(d.dir, "baton.yaml")
	if err = os.WriteFile(d.config, yml.Bytes(), 0o600); err != nil {
		return d, err
	}
	cfg, err := config.Parse(d.config, yml.Bytes(), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return d, fmt.Errorf("demo config: %w", err)
	}

	if d.logFile, err = os.OpenFile(filepath.Join(d.dir, "baton.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return d, err
	}
	zl, err := buildLogger(config.Log{Level: "info", Format: "console"}, d.logFile)
	if err != nil {
		return d, err
	}
	raiseOpenFiles(zl)

	// One clock for the platform and Baton: a jump of the platform's clock
	// (POST /_platform/clock) moves Baton's rule timers too.
	d.clock = clock.NewOffset(time.Now())
	d.platform, err = messengertest.New(messengertest.Config{
		Apps: []messengertest.AppConfig{
			{Name: "faq-bot", ID: demoBotID, Secret: botSecret, VerifyToken: botVerify, CallbackURL: d.batonURL + "/webhooks/faq-bot"},
			{Name: "inbox", ID: demoInboxID, Secret: inboxSecret, VerifyToken: inboxVerify, CallbackURL: d.batonURL + "/webhooks/inbox"},
		},
		Pages: []messengertest.PageConfig{{ID: demoPage, Name: "Acme Shop", Mode: messengertest.ModeConversationRouting, DefaultApp: "faq-bot",
			Apps: map[string]messengertest.PageAppConfig{"faq-bot": {Token: botPageToken, Takeover: true}, "inbox": {Token: inboxPageToken}}}, {
			ID: demoIG, Name: "acme.shop (Instagram)", Platform: messengertest.PlatformInstagram, Mode: messengertest.ModeConversationRouting, DefaultApp: "faq-bot",
			Apps: map[string]messengertest.PageAppConfig{"faq-bot": {Token: botIGToken, Takeover: true}, "inbox": {Token: inboxIGToken}}}},
	}, messengertest.WithClock(d.clock), messengertest.WithLogger(zl.Named("platform")))
	if err != nil {
		return d, err
	}
	d.platformSrv = d.serve(pl, d.platform.Handler())

	db, err := openStore(context.Background(), cfg) // the demo writes its own bbolt config
	if err != nil {
		return d, err
	}
	baton, err := orchestrator.NewServer(cfg, db, orchestrator.ServerOptions{Clock: d.clock, Log: zl, Public: bl, Admin: al})
	if err != nil {
		db.Close()
		return d, err
	}
	var runCtx context.Context
	runCtx, d.stopBaton = context.WithCancel(context.Background())
	go func() {
		err := baton.Run(runCtx)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		d.batonDone <- err
	}()
	<-baton.Listening()

	stdlog := log.New(d.logFile, "", log.LstdFlags)
	bot, err := faqbot.New(faqbot.Options{HookSecret: env["FAQ_BOT_HOOK_SECRET"], Baton: d.batonURL, Token: env["FAQ_BOT_API_TOKEN"],
		Quiet: demoEscalationWords, Logger: stdlog})
	if err != nil {
		return d, err
	}
	d.botSrv = d.serve(botl, bot)
	if d.inboxOpt, err = inboxOptions(cfg, zl.Named("inbox")); err != nil {
		return d, err
	}
	d.inboxOpt.Clock, d.inboxOpt.RefreshEvery = d.clock, o.InboxRefresh
	d.inboxAddr = inl.Addr().String()
	return d, d.startInbox(inl)
}

// startInbox runs the inbox on l (a new listener on its address when nil:
// a restart).
func (d *demo) startInbox(l net.Listener) error {
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", d.inboxAddr); err != nil {
			return fmt.Errorf("inbox listen: %w", err)
		}
	}
	in, err := inbox.New(d.inboxOpt)
	if err != nil {
		l.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stopInbox, d.inboxDone = cancel, make(chan error, 1)
	go func() { d.inboxDone <- serveInbox(ctx, in, l) }()
	return nil
}

// stopInboxNow stops the inbox and waits for it (startInbox(nil) starts
// it again on the same address and data: a test's restart).
func (d *demo) stopInboxNow() error {
	d.stopInbox()
	return <-d.inboxDone
}

// demoEscalationWords are the escalation rule's words; the FAQ bot leaves
// them to the rule.
var demoEscalationWords = []string{"human", "agent", "person"}

var demoConfig = template.Must(template.New("baton.yaml").Parse(`# Generated by baton demo. Secrets are environment variables that the demo
# sets in its own process; run "baton check -config" on a copy of this
# file with them set to see it validated.
listen: "{{.Public}}"
admin: {listen: "{{.Admin}}", token_env: BATON_ADMIN_TOKEN}
data: {{.Data}}
graph: {url: "{{.Platform}}", version: "v21.0", timeout: 5s}
delivery: {max_attempts: 10, backoff: 200ms, max_backoff: 10s, timeout: 5s}
log: {level: info, format: console}
apps:
  - name: faq-bot
    app_id: "{{.BotID}}"
    secret_env: FAQ_BOT_SECRET
    verify_token_env: FAQ_BOT_VERIFY_TOKEN
    token_env: FAQ_BOT_API_TOKEN
    adapter: {type: http, url: "{{.Bot}}/baton", secret_env: FAQ_BOT_HOOK_SECRET}
  - name: inbox                       # Baton's human-agent inbox (baton inbox)
    app_id: "{{.InboxID}}"
    secret_env: INBOX_SECRET
    verify_token_env: INBOX_VERIFY_TOKEN
    token_env: INBOX_API_TOKEN
    # standby: the inbox also sees what the person and the bot said before
    # the handover.
    adapter: {type: http, url: "{{.Inbox}}/baton", secret_env: INBOX_HOOK_SECRET, standby: true}
  - name: page-inbox                  # Meta's own Page Inbox
    app_id: "{{.PageInbox}}"
  - name: ig-inbox                    # Instagram's inbox
    app_id: "{{.IGInbox}}"
pages:
  - id: "{{.IG}}"                     # the shop's Instagram professional account
    platform: instagram
    primary: faq-bot
    secondary: [inbox, ig-inbox]
    tokens:
      faq-bot: {token_env: IG_TOKEN_FAQ_BOT}
      inbox: {token_env: IG_TOKEN_INBOX}
    rules:
{{template "handover" .}}
  - id: "{{.Page}}"
    mode: conversation_routing
    primary: faq-bot
    secondary: [inbox, page-inbox]
    tokens:
      faq-bot: {token_env: PAGE_TOKEN_FAQ_BOT}
      inbox: {token_env: PAGE_TOKEN_INBOX}
    rules:
{{template "handover" .}}
      failover:
        after: 1m
        to: inbox
        back: true
        message: "Our bot is having trouble; a person will answer."
inbox:
  listen: "{{.InboxListen}}"
  app: inbox
  data: {{.InboxData}}
  baton_url: "{{.Baton}}"
  agents:
    - {name: anna, display_name: Anna, password_hash: "{{.AnnaHash}}", persona: true, picture: "https://acme-shop.example/agents/anna.png"}
    - {name: ben, display_name: Ben, password_hash: "{{.BenHash}}", persona: true, picture: "https://acme-shop.example/agents/ben.png"}
  done:
    action: pass
    closing_message: "Thanks for writing! Our bot is back if you need anything else."
  canned_replies:
    - {title: Hours, text: "We're open Monday to Friday, 9:00 to 17:00."}
    - {title: Refunds, text: "You can return anything within 30 days for a full refund."}
  hold: {typing: {{.TypingHold}}, claim: {{.ClaimHold}}}
  warn_before: {{.WarnBefore}}
{{define "handover"}}      escalate:
        - name: human
          words: [{{.Words}}]
          payloads: [TALK_TO_HUMAN]
          to: inbox
          message: "Connecting you with a person. Someone will answer here shortly."
      return:
        after: {{.ReturnAfter}}
        to: primary
        message: "Our agent has stepped away; the shop's bot is back. Write \"human\" to reach a person again."{{end}}`))

// serve runs an HTTP server on l until stop.
func (d *demo) serve(l net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.serveErrs <- err
		}
	}()
	return srv
}

func (d *demo) banner(w io.Writer) {
	chat := fmt.Sprintf("%s/_platform/chat?page=%s&psid=%s", d.platformURL, demoPage, demoPersonPSID)
	igChat := fmt.Sprintf("%s/_platform/chat?page=%s&psid=%s", d.platformURL, demoIG, demoPersonPSID)
	fmt.Fprintf(w, `Baton demo: the fake Messenger platform, Baton, a FAQ bot and the inbox, on this machine.

  1. Be the person:  open %s
     Write "hi", then "what are your hours?", then "I want a human".
     (On the shop's Instagram account: open %s)
  2. Be the agent:   open %s/ and sign in as anna (password %s)
     or, in another browser, as ben (password %s).
     The conversation is there with why it came and what was said before.
     Claim it, reply (the person sees "Anna"), then press Done: the thread
     goes back to the FAQ bot with a closing message.
  3. Watch Baton:    open %s/console/ and sign in with the admin token %s
     (who owns each thread, what was said, what is stuck, live), or
     BATON_ADMIN_TOKEN=%s baton threads show -admin %s %s %s
     (go run ./cmd/baton threads ... from the repository)

Or as a person with curl:
  curl -s -X POST '%s/_platform/pages/%s/users/%s/messages?wait=true' -d '{"text":"I want a human"}'
Jump the clock past the return rule (an inbox thread idle that long goes back to the bot):
  curl -s -X POST %s/_platform/clock -d '{"advance":"11m"}'

Config: %s   Logs: %s
Ctrl-C stops everything.
`, chat, igChat, d.inboxURL, d.passwords["anna"], d.passwords["ben"], d.adminURL, d.adminToken, d.adminToken, d.adminURL, demoPage, demoPersonPSID,
		d.platformURL, demoPage, demoPersonPSID, d.platformURL, d.config, d.logFile.Name())
}

// wait runs until ctx ends or a part fails, then stops everything.
func (d *demo) wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-d.serveErrs:
	case err = <-d.batonDone:
		d.batonDone <- err // stop waits for it
	}
	d.stop()
	return err
}

// stop shuts down in the order data flows: no more webhooks from the
// platform, then Baton (its outbox keeps what it did not deliver), then
// the bot and the inbox.
func (d *demo) stop() { d.stopOnce.Do(d.stopAll) }

func (d *demo) stopAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d.platformSrv != nil {
		_ = d.platformSrv.Shutdown(ctx)
	}
	if d.platform != nil {
		d.platform.Close()
	}
	if d.stopBaton != nil {
		d.stopBaton()
		<-d.batonDone
	}
	if d.botSrv != nil {
		_ = d.botSrv.Shutdown(ctx)
	}
	if d.stopInbox != nil {
		d.stopInbox()
		<-d.inboxDone
	}
	if d.logFile != nil {
		d.logFile.Close()
	}
	if d.ownDir {
		os.RemoveAll(d.dir)
	}
}
