package faqbot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/webhook"
)

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestAnswer(t *testing.T) {
	b, err := New(Options{HookSecret: hookSecret, Baton: "http://127.0.0.1:1", Quiet: []string{"human", "agent"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"What are your HOURS?", "We're open"},
		{"when do you ship", "Orders ship"},
		{"I'd like a refund", "You can return"},
		{"Hello!", "Hi! I'm the shop's bot"},
		{"shipping... or a human", ""}, // quiet wins: the escalation rule answers
		{"AGENT please", ""},
		{"humane society", "I can tell you"}, // whole words only
		{"¿qué?", "I can tell you"},
	} {
		if got := b.Answer(tc.in); !strings.HasPrefix(got, tc.want) || (tc.want == "" && got != "") {
			t.Errorf("Answer(%q) = %q, want prefix %q", tc.in, got, tc.want)
		}
	}
}

type graph struct {
	mu     sync.Mutex
	bodies []string
	status int
}

func (g *graph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bodies = append(g.bodies, r.URL.Path+" "+r.URL.Query().Get("access_token")+" "+string(body))
	if r.Method == http.MethodGet && r.URL.Query().Get("fields") == "first_name" {
		io.WriteString(w, `{"first_name":"Ada","id":"7123"}`)
		return
	}
	if g.status != 0 {
		w.WriteHeader(g.status)
		io.WriteString(w, `{"error":{"message":"(#10) Baton: faq-bot does not own the thread","type":"OAuthException","code":10}}`)
		return
	}
	io.WriteString(w, `{"recipient_id":"7123","message_id":"m_1"}`)
}

func deliver(t *testing.T, h http.Handler, channel, event string) int {
	t.Helper()
	body, _ := json.Marshal(adapters.Delivery{ID: "dlv_1", PageID: "100", PSID: "7123", Channel: channel, Event: json.RawMessage(event)})
	key, _ := webhook.Key(hookSecret)
	req := httptest.NewRequest(http.MethodPost, "/baton", bytes.NewReader(body))
	ts := time.Now().Unix()
	req.Header.Set("webhook-id", "dlv_1")
	req.Header.Set("webhook-timestamp", fmt.Sprint(ts))
	req.Header.Set("webhook-signature", webhook.Sign(key, "dlv_1", ts, body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func TestBotAnswersThroughBatonsGraph(t *testing.T) {
	g := &graph{}
	baton := httptest.NewServer(g)
	defer baton.Close()
	b, err := New(Options{HookSecret: hookSecret, Baton: baton.URL, Token: "bot-token", Quiet: []string{"human"}})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(text string) string {
		return fmt.Sprintf(`{"sender":{"id":"7123"},"recipient":{"id":"100"},"timestamp":1,"message":{"mid":"m_0","text":%q}}`, text)
	}
	if code := deliver(t, b, "messaging", msg("hours?")); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	for _, quiet := range []struct{ ch, ev string }{
		{"standby", msg("hours?")},
		{"messaging", msg("a human please")},
		{"messaging", `{"sender":{"id":"100"},"recipient":{"id":"7123"},"timestamp":1,"message":{"mid":"m_e","text":"x","is_echo":true}}`},
	} {
		if code := deliver(t, b, quiet.ch, quiet.ev); code != http.StatusNoContent {
			t.Fatalf("status %d", code)
		}
	}
	if len(g.bodies) != 1 || !strings.HasPrefix(g.bodies[0], "/graph/v21.0/100/messages bot-token ") {
		t.Fatalf("graph calls = %q", g.bodies)
	}
	if !strings.Contains(g.bodies[0], "open Monday to Friday") {
		t.Errorf("sent %q", g.bodies[0])
	}
	// A greeting names the person, read through Baton's /graph.
	if code := deliver(t, b, "messaging", msg("hello")); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	if len(g.bodies) != 3 || !strings.HasPrefix(g.bodies[1], "/graph/v21.0/7123 bot-token") || !strings.Contains(g.bodies[2], `"Hi Ada! I'm the shop's bot.`) {
		t.Fatalf("graph calls = %q", g.bodies)
	}
	// Baton refusing the send (the thread moved on) is not worth a retry;
	// Baton down is.
	g.status = http.StatusBadRequest
	if code := deliver(t, b, "messaging", msg("hours?")); code != http.StatusNoContent {
		t.Errorf("refused send: status %d", code)
	}
	g.status = http.StatusBadGateway
	if code := deliver(t, b, "messaging", msg("hours?")); code != http.StatusServiceUnavailable {
		t.Errorf("failed send: status %d", code)
	}
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/baton", strings.NewReader(`{}`)))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("unsigned: status %d", rec.Code)
	}
}
