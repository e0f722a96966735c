package orchestrator_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// TestThirdPartySDKBot runs examples/sdkbot, a bot written with the npm
// package messaging-api-messenger, unmodified behind Baton: it receives
// Meta-format webhooks from Baton's "messenger" adapter and calls Baton's
// /graph through the SDK. It sets its Messenger Profile, replaces its
// persona and uploads an image at start, greets the person by first name
// as the persona with that image, replies, hands the thread to the Page Inbox,
// is refused with Meta's error when it sends while the inbox owns the
// thread, and takes the thread back.
func TestThirdPartySDKBot(t *testing.T) {
	bot := needSDKBot(t, "the third-party SDK test")
	port := strings.Split(freePort(t), ":")[1]
	h := newHarness(t, withSDKAdapter(port))
	// A persona an earlier run of the bot left: the bot replaces it.
	var stale struct{ ID string }
	if st := h.do("POST", h.baton+"/graph/v21.0/me/personas", env["SUPPORT_API"], map[string]string{"name": "Sam from support", "profile_picture_url": "https://example.com/old.png"}, &stale); st != 200 {
		t.Fatalf("stale persona: %d", st)
	}
	bot.start(h, port)

	if s := bot.wait("set-up"); s["getStarted"] != "GET_STARTED" || s["persona"] != "Sam from support" || s["attachmentId"] == "" {
		t.Fatalf("set-up %v", s)
	}

	h.say("hello")
	bot.wait("replied")
	first, _ := messengertest.PersonName(psid)
	if g := bot.did("greeted"); g == nil || g["firstName"] != first {
		t.Fatalf("greeted %v, want %s", g, first)
	}
	st, _ := h.platform.Thread(pageID, psid)
	if n := len(st.Messages); n < 4 || st.Messages[n-3].Text != "Hello "+first+"!" || !st.Messages[n-2].HasAttach || st.Messages[n-1].Text != "You said: hello" || st.Messages[n-1].App != "support-bot" {
		t.Fatalf("platform thread %+v", st.Messages)
	}
	sdkProfileCallsWentThroughBaton(t, h, stale.ID)

	h.say("I want a human")
	bot.wait("passed")
	if h.platformOwner() != inboxID || h.batonThread().Owner != "page-inbox" {
		t.Fatalf("after pass: platform %q, baton %+v", h.platformOwner(), h.batonThread())
	}

	h.say("hello? anyone?") // arrives on standby for the bot
	bot.wait("took")
	refused := bot.did("refused")
	if refused == nil || refused["code"] != float64(10) || refused["subcode"] != float64(2018300) {
		t.Fatalf("refusal %v (want Meta's 10/2018300)", refused)
	}
	if h.platformOwner() != supportID || h.batonThread().Owner != "support-bot" {
		t.Fatalf("after take: platform %q, baton %+v", h.platformOwner(), h.batonThread())
	}
	st, _ = h.platform.Thread(pageID, psid)
	if last := st.Messages[len(st.Messages)-1]; last.Text != "I'm back." {
		t.Fatalf("last message %+v", last)
	}
}

// sdkBot is examples/sdkbot run with node for one test, and what it
// logged (its GET /log: one entry per thing it did, "did": "error" for a
// failure).
type sdkBot struct {
	t         *testing.T
	node, dir string
	h         *harness
	port      string
	logFile   string
}

// needSDKBot finds node and the bot's npm packages, or skips the test
// (fails it in CI, which must run it).
func needSDKBot(t *testing.T, what string) *sdkBot {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("..", "examples", "sdkbot"))
	node, err := exec.LookPath("node")
	if err != nil || !exists(filepath.Join(dir, "node_modules", "messaging-api-messenger")) {
		msg := "SKIPPING " + what + ": run 'npm ci --ignore-scripts' in examples/sdkbot (scripts/test does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " — CI must run it")
		}
		t.Skip(msg)
	}
	return &sdkBot{t: t, node: node, dir: dir}
}

// start runs the bot on port, with h's /graph as its Graph origin, the
// support-bot's tokens and extra added to its environment, and waits until
// it listens. It is killed when the test ends.
func (b *sdkBot) start(h *harness, port string, extra ...string) {
	t := b.t
	t.Helper()
	b.h, b.port = h, port
	cmd := exec.Command(b.node, "bot.js")
	cmd.Dir = b.dir
	cmd.Env = append(append(os.Environ(), "PORT="+port, "GRAPH_ORIGIN="+h.baton+"/graph",
		"ACCESS_TOKEN="+env["SUPPORT_API"], "APP_SECRET="+env["SUPPORT_HOOK"]), extra...)
	b.logFile = filepath.Join(t.TempDir(), "sdkbot.log")
	out, err := os.Create(b.logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); out.Close() })
	h.eventually("the SDK bot to listen", func() bool { return b.log() != nil })
}

func (b *sdkBot) log() []map[string]any {
	resp, err := http.Get("http://127.0.0.1:" + b.port + "/log")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var l []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&l)
	return l
}

// did is the bot's first log entry for what, or nil.
func (b *sdkBot) did(what string) map[string]any {
	for _, e := range b.log() {
		if e["did"] == what {
			return e
		}
	}
	return nil
}

// wait waits until the bot did what and returns the entry; an error the
// bot logged first fails the test, with the bot's output.
func (b *sdkBot) wait(what string) map[string]any {
	b.t.Helper()
	b.h.eventually("the SDK bot's "+what, func() bool { return b.did(what) != nil || b.did("error") != nil })
	if e := b.did("error"); e != nil {
		out, _ := os.ReadFile(b.logFile)
		b.t.Fatalf("bot error: %v\n%s", e, out)
	}
	return b.did(what)
}

// sdkProfileCallsWentThroughBaton checks, in the platform's call log, that
// every profile call the SDK makes reached Meta through Baton with the
// app's page token: the Messenger Profile, personas (the stale one
// deleted, the new one read), the upload as a file, the user's profile and
// the sends as the persona.
func sdkProfileCallsWentThroughBaton(t *testing.T, h *harness, stale string) {
	t.Helper()
	want := map[string]bool{
		"POST messenger_profile": false, "GET messenger_profile": false, "GET personas": false, "POST personas": false,
		"DELETE " + stale: false, "GET a persona": false, "POST message_attachments filedata": false, "GET " + psid: false, "POST messages persona_id": false,
	}
	for _, c := range h.platform.Calls() {
		if c.App != "support-bot" || !c.Success {
			continue
		}
		key := c.Method + " " + c.Edge
		switch {
		case c.Edge == "" && strings.HasSuffix(c.Path, "/"+stale):
			key = c.Method + " " + stale
		case c.Edge == "" && strings.HasSuffix(c.Path, "/"+psid):
			key = c.Method + " " + psid
		case c.Edge == "" && c.Method == "GET" && !strings.HasSuffix(c.Path, "/"+pageID):
			key = "GET a persona"
		case c.Edge == "message_attachments" && c.Params["filedata"] == "welcome.png":
			key += " filedata"
		case c.Edge == "messages" && c.Params["persona_id"] != "":
			key += " persona_id"
		}
		if _, ok := want[key]; ok {
			want[key] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("the platform never got %s from support-bot through Baton", k)
		}
	}
	var out messenger.ErrorEnvelope
	if st := h.do("GET", h.baton+"/graph/v21.0/"+stale, env["SUPPORT_API"], nil, &out); st != 400 || out.Error == nil || out.Error.Subcode != 33 {
		t.Errorf("the stale persona is still there: %d %+v", st, out.Error)
	}
}

// withSDKAdapter makes support-bot's adapter (the first in the harness
// config) the Meta-format one at the SDK bot's port, with standby copies.
func withSDKAdapter(port string) harnessOpt {
	return func(yaml *string) {
		i := strings.Index(*yaml, "adapter: {type: http")
		end := strings.Index((*yaml)[i:], "}") + i + 1
		*yaml = (*yaml)[:i] + `adapter: {type: messenger, url: "http://127.0.0.1:` + port + `/webhook", secret_env: SUPPORT_HOOK, standby: true}` + (*yaml)[end:]
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
