package orchestrator_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/orchestrator/tlsserve/tlstest"
)

// TestThirdPartySDKBotOverTLS runs examples/sdkbot unmodified behind a
// Baton that serves https: an SDK that speaks https to its Graph origin
// works by changing URLs alone. The bot is given GRAPH_ORIGIN=https://...
// and trusts the test CA through NODE_EXTRA_CA_CERTS, Node's documented
// way to add a CA; it replies and hands the thread to the Page Inbox,
// both through /graph over TLS (plain http on that port is refused).
func TestThirdPartySDKBotOverTLS(t *testing.T) {
	dir, _ := filepath.Abs(filepath.Join("..", "examples", "sdkbot"))
	node, err := exec.LookPath("node")
	if err != nil || !exists(filepath.Join(dir, "node_modules", "messaging-api-messenger")) {
		msg := "SKIPPING the third-party SDK test over TLS: run 'npm ci --ignore-scripts' in examples/sdkbot (scripts/test does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " — CI must run it")
		}
		t.Skip(msg)
	}
	ca, certDir := tlstest.NewCA(t), t.TempDir()
	port := strings.Split(freePort(t), ":")[1]
	h := newHarness(t, withSDKAdapter(port), withTLS(t, ca, certDir))
	if !strings.HasPrefix(h.baton, "https://127.0.0.1:") {
		t.Fatalf("baton at %s", h.baton)
	}
	bot := exec.Command(node, "bot.js")
	bot.Dir = dir
	bot.Env = append(os.Environ(), "PORT="+port, "GRAPH_ORIGIN="+h.baton+"/graph",
		"NODE_EXTRA_CA_CERTS="+filepath.Join(certDir, "ca.pem"),
		"ACCESS_TOKEN="+env["SUPPORT_API"], "APP_SECRET="+env["SUPPORT_HOOK"])
	logFile := filepath.Join(t.TempDir(), "sdkbot.log")
	out, _ := os.Create(logFile)
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
			if e["did"] == what || e["did"] == "error" {
				return e
			}
		}
		return nil
	}
	wait := func(what string) {
		t.Helper()
		h.eventually("the bot's "+what, func() bool { return did(what) != nil })
		if e := did(what); e["did"] == "error" {
			out, _ := os.ReadFile(logFile)
			t.Fatalf("bot error: %v\n%s", e, out)
		}
	}

	// Its set-up (messenger profile, personas, an upload) and its
	// greeting (the person's profile) go through /graph over https too.
	wait("set-up")
	h.say("hello")
	wait("greeted")
	wait("replied")
	st, _ := h.platform.Thread(pageID, psid)
	if last := st.Messages[len(st.Messages)-1]; last.Text != "You said: hello" || last.App != "support-bot" {
		t.Fatalf("platform thread %+v", st.Messages)
	}
	h.say("I want a human")
	wait("passed")
	if h.platformOwner() != inboxID || h.batonThread().Owner != "page-inbox" {
		t.Fatalf("after pass: platform %q, baton %+v", h.platformOwner(), h.batonThread())
	}
}
