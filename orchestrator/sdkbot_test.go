package orchestrator_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestThirdPartySDKBot runs examples/sdkbot, a bot written with the npm
// package messaging-api-messenger, unmodified behind Baton: it receives
// Meta-format webhooks from Baton's "messenger" adapter and calls Baton's
// /graph through the SDK. It replies, hands the thread to the Page Inbox,
// is refused with Meta's error when it sends while the inbox owns the
// thread, and takes the thread back.
func TestThirdPartySDKBot(t *testing.T) {
	dir, _ := filepath.Abs(filepath.Join("..", "examples", "sdkbot"))
	node, err := exec.LookPath("node")
	if err != nil || !exists(filepath.Join(dir, "node_modules", "messaging-api-messenger")) {
		msg := "SKIPPING the third-party SDK test: run 'npm ci --ignore-scripts' in examples/sdkbot (scripts/test does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " — CI must run it")
		}
		t.Skip(msg)
	}
	port := strings.Split(freePort(t), ":")[1]
	h := newHarness(t, withSDKAdapter(port))
	bot := exec.Command(node, "bot.js")
	bot.Dir = dir
	bot.Env = append(os.Environ(), "PORT="+port, "GRAPH_ORIGIN="+h.baton+"/graph", "ACCESS_TOKEN="+env["SUPPORT_API"], "APP_SECRET="+env["SUPPORT_HOOK"])
	out, _ := os.Create(filepath.Join(t.TempDir(), "sdkbot.log"))
	bot.Stdout, bot.Stderr = out, out
	if err := bot.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bot.Process.Kill(); _ = bot.Wait() }()
	botLog := func() []map[string]any {
		resp, err := http.Get("http://127.0.0.1:" + port + "/log")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var l []map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&l)
		return l
	}
	h.eventually("the SDK bot to listen", func() bool { return botLog() != nil })
	did := func(what string) map[string]any {
		for _, e := range botLog() {
			if e["did"] == what {
				return e
			}
		}
		return nil
	}

	h.say("hello")
	h.eventually("the bot's reply", func() bool { return did("replied") != nil })
	st, _ := h.platform.Thread(pageID, psid)
	if last := st.Messages[len(st.Messages)-1]; last.Text != "You said: hello" || last.App != "support-bot" {
		t.Fatalf("platform thread %+v", st.Messages)
	}

	h.say("I want a human")
	h.eventually("the SDK's pass to the inbox", func() bool { return did("passed") != nil })
	if h.platformOwner() != inboxID || h.batonThread().Owner != "page-inbox" {
		t.Fatalf("after pass: platform %q, baton %+v", h.platformOwner(), h.batonThread())
	}

	h.say("hello? anyone?") // arrives on standby for the bot
	h.eventually("the bot to take the thread back", func() bool { return did("took") != nil || did("error") != nil })
	if e := did("error"); e != nil {
		t.Fatalf("bot error: %v", e)
	}
	refused := did("refused")
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
