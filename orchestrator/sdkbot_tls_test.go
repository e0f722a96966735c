package orchestrator_test

import (
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
	bot := needSDKBot(t, "the third-party SDK test over TLS")
	ca, certDir := tlstest.NewCA(t), t.TempDir()
	port := strings.Split(freePort(t), ":")[1]
	h := newHarness(t, withSDKAdapter(port), withTLS(t, ca, certDir))
	if !strings.HasPrefix(h.baton, "https://127.0.0.1:") {
		t.Fatalf("baton at %s", h.baton)
	}
	bot.start(h, port, "NODE_EXTRA_CA_CERTS="+filepath.Join(certDir, "ca.pem"))

	// Its set-up (messenger profile, personas, an upload) and its
	// greeting (the person's profile) go through /graph over https too.
	bot.wait("set-up")
	h.say("hello")
	bot.wait("greeted")
	bot.wait("replied")
	st, _ := h.platform.Thread(pageID, psid)
	if last := st.Messages[len(st.Messages)-1]; last.Text != "You said: hello" || last.App != "support-bot" {
		t.Fatalf("platform thread %+v", st.Messages)
	}
	h.say("I want a human")
	bot.wait("passed")
	if h.platformOwner() != inboxID || h.batonThread().Owner != "page-inbox" {
		t.Fatalf("after pass: platform %q, baton %+v", h.platformOwner(), h.batonThread())
	}
}
