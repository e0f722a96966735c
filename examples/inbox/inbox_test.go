package inbox

import (
	"bufio"
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

const (
	hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	appID      = "734567890123456"
	botAppID   = "512345678901234"
)

// fakeBaton records the inbox's calls to Baton's API.
type fakeBaton struct {
	mu    sync.Mutex
	calls []string // "METHOD path auth body"
	fail  bool
}

func (f *fakeBaton) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Authorization"), body))
	fail := f.fail
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case fail && strings.HasPrefix(r.URL.Path, "/graph/"):
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278}}`)
	case fail:
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"error":{"code":"not_owner","message":"inbox does not own the thread"}}`)
	case strings.HasPrefix(r.URL.Path, "/graph/"):
		io.WriteString(w, `{"recipient_id":"7123","message_id":"m_agent_1"}`)
	default:
		io.WriteString(w, `{"owner":"faq-bot","state":"primary"}`)
	}
}

func (f *fakeBaton) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func newInbox(t *testing.T) (*Inbox, *httptest.Server, *fakeBaton) {
	t.Helper()
	fb := &fakeBaton{}
	bs := httptest.NewServer(fb)
	t.Cleanup(bs.Close)
	in, err := New(Options{App: "inbox", AppID: appID, HookSecret: hookSecret, Baton: bs.URL, Token: "inbox-token"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(in.Handler())
	t.Cleanup(func() { in.Close(); srv.Close() })
	return in, srv, fb
}

// deliver POSTs a signed delivery as Baton's http adapter would.
func deliver(t *testing.T, url, id, channel, owner, event string) int {
	t.Helper()
	body, _ := json.Marshal(adapters.Delivery{ID: id, App: "inbox", PageID: "100", PSID: "7123", Channel: channel, Kind: "x", Attempt: 1,
		Thread: adapters.Thread{Owner: owner}, Event: json.RawMessage(event)})
	return signedPost(t, url, id, body)
}

func list(t *testing.T, url string) []Conversation {
	t.Helper()
	resp, err := http.Get(url + "/api/conversations")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []Conversation
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func post(t *testing.T, url, body string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func msg(mid, text string, ts int64) string {
	return fmt.Sprintf(`{"sender":{"id":"7123"},"recipient":{"id":"100"},"timestamp":%d,"message":{"mid":%q,"text":%q}}`, ts, mid, text)
}

func echo(mid, text, app string, ts int64) string {
	return fmt.Sprintf(`{"sender":{"id":"100"},"recipient":{"id":"7123"},"timestamp":%d,"message":{"mid":%q,"text":%q,"is_echo":true,"app_id":%s}}`, ts, mid, text, app)
}

func pass(meta string, ts int64) string {
	return fmt.Sprintf(`{"sender":{"id":"7123"},"recipient":{"id":"100"},"timestamp":%d,"pass_thread_control":{"new_owner_app_id":%q,"previous_owner_app_id":%q,"metadata":%q}}`, ts, appID, botAppID, meta)
}

func TestInboxShowsHandedOverConversationWithHistory(t *testing.T) {
	_, srv, _ := newInbox(t)
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	// Before the handover: standby copies of the person and the bot.
	for i, d := range []struct{ id, ch, owner, ev string }{
		{"dlv_1", "standby", "faq-bot", msg("m_1", "hi", t0)},
		{"dlv_2", "standby", "faq-bot", echo("m_2", "Hi! I'm the bot", botAppID, t0+1)},
		{"dlv_3", "standby", "faq-bot", msg("m_3", "I want a human", t0+2)},
		{"dlv_4", "messaging", "inbox", pass("escalation human: word human", t0+3)},
		{"dlv_4", "messaging", "inbox", pass("escalation human: word human", t0+3)}, // Baton's retry
		{"dlv_5", "messaging", "inbox", msg("m_3", "I want a human", t0+2)},         // same mid again
	} {
		if code := deliver(t, srv.URL, d.id, d.ch, d.owner, d.ev); code != http.StatusNoContent {
			t.Fatalf("delivery %d: status %d", i, code)
		}
	}
	got := list(t, srv.URL)
	if len(got) != 1 {
		t.Fatalf("conversations = %+v", got)
	}
	c := got[0]
	if !c.Assigned || c.Why != "escalation human: word human" || c.Owner != "inbox" {
		t.Errorf("conversation = %+v", c)
	}
	var said []string
	for _, m := range c.Messages {
		said = append(said, m.From+": "+m.Text)
	}
	want := "person: hi|bot: Hi! I'm the bot|person: I want a human"
	if strings.Join(said, "|") != want {
		t.Errorf("messages = %q, want %q", strings.Join(said, "|"), want)
	}
}

func TestInboxNewestHandoverFirstAndLeavesWhenOwnerChanges(t *testing.T) {
	_, srv, _ := newInbox(t)
	t0 := time.Now().UnixMilli()
	body := func(psid, ev string) string { return strings.ReplaceAll(ev, `"7123"`, `"`+psid+`"`) }
	for i, psid := range []string{"7001", "7002", "7003"} {
		b, _ := json.Marshal(adapters.Delivery{ID: "p" + psid, PageID: "100", PSID: psid, Channel: "messaging", Thread: adapters.Thread{Owner: "inbox"},
			Event: json.RawMessage(body(psid, pass("why "+psid, t0+int64(i)*1000)))})
		if code := signedPost(t, srv.URL, "p"+psid, b); code != http.StatusNoContent {
			t.Fatalf("delivery: %d", code)
		}
	}
	got := list(t, srv.URL)
	if len(got) != 3 || got[0].PSID != "7003" || got[2].PSID != "7001" {
		t.Fatalf("order = %+v", got)
	}
	// The return rule gave 7002 back to the bot: its next standby copy says so.
	b, _ := json.Marshal(adapters.Delivery{ID: "s7002", PageID: "100", PSID: "7002", Channel: "standby", Thread: adapters.Thread{Owner: "faq-bot"},
		Event: json.RawMessage(body("7002", msg("m_x", "thanks", t0+5000)))})
	if code := signedPost(t, srv.URL, "s7002", b); code != http.StatusNoContent {
		t.Fatalf("delivery: %d", code)
	}
	got = list(t, srv.URL)
	if len(got) != 2 || got[0].PSID != "7003" || got[1].PSID != "7001" {
		t.Fatalf("after the return = %+v", got)
	}
}

// signedPost POSTs body to the inbox signed as Baton signs it.
func signedPost(t *testing.T, url, id string, body []byte) int {
	t.Helper()
	key, _ := webhook.Key(hookSecret)
	req, _ := http.NewRequest(http.MethodPost, url+"/baton", bytes.NewReader(body))
	ts := time.Now().Unix()
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", fmt.Sprint(ts))
	req.Header.Set("webhook-signature", webhook.Sign(key, id, ts, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestInboxRefusesUnsignedAndMalformed(t *testing.T) {
	_, srv, _ := newInbox(t)
	resp, err := http.Post(srv.URL+"/baton", "application/json", strings.NewReader(`{"id":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned: %d", resp.StatusCode)
	}
	if code := signedPost(t, srv.URL, "bad", []byte(`{"id":`)); code != http.StatusBadRequest {
		t.Errorf("malformed: %d", code)
	}
	if got := list(t, srv.URL); len(got) != 0 {
		t.Errorf("conversations = %+v", got)
	}
}

func TestInboxReplyAndDoneGoThroughBaton(t *testing.T) {
	_, srv, fb := newInbox(t)
	deliver(t, srv.URL, "dlv_1", "messaging", "inbox", pass("asked", time.Now().UnixMilli()))

	code, out := post(t, srv.URL+"/api/conversations/100/7123/reply", `{"text":"Hi, Anna here"}`)
	if code != http.StatusOK || out["message_id"] != "m_agent_1" {
		t.Fatalf("reply: %d %v", code, out)
	}
	if code, _ := post(t, srv.URL+"/api/conversations/100/7123/reply", `{"text":"  "}`); code != http.StatusBadRequest {
		t.Errorf("empty reply: %d", code)
	}
	// Baton's echo of the agent's reply does not show it twice.
	deliver(t, srv.URL, "dlv_2", "messaging", "inbox", echo("m_agent_1", "Hi, Anna here", appID, time.Now().UnixMilli()))
	c := list(t, srv.URL)[0]
	if n := len(c.Messages); n != 1 || c.Messages[0].From != "agent" {
		t.Errorf("messages = %+v", c.Messages)
	}

	code, out = post(t, srv.URL+"/api/conversations/100/7123/done", `{}`)
	if code != http.StatusOK || out["owner"] != "faq-bot" {
		t.Fatalf("done: %d %v", code, out)
	}
	if got := list(t, srv.URL); len(got) != 0 {
		t.Errorf("still listed after Done: %+v", got)
	}
	calls := fb.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls = %q", calls)
	}
	if want := `POST /graph/v21.0/100/messages Bearer inbox-token {"message":{"text":"Hi, Anna here"},"messaging_type":"RESPONSE","recipient":{"id":"7123"}}`; calls[0] != want {
		t.Errorf("reply call = %s\nwant        %s", calls[0], want)
	}
	if !strings.HasPrefix(calls[1], "POST /v1/threads/100/7123/pass Bearer inbox-token ") {
		t.Errorf("done call = %s", calls[1])
	}
}

func TestInboxShowsBatonsAndMetasErrors(t *testing.T) {
	_, srv, fb := newInbox(t)
	fb.fail = true
	code, out := post(t, srv.URL+"/api/conversations/100/7123/reply", `{"text":"late"}`)
	if code != http.StatusBadGateway || !strings.Contains(out["error"], "outside of allowed window") {
		t.Errorf("reply: %d %v", code, out)
	}
	code, out = post(t, srv.URL+"/api/conversations/100/7123/done", `{}`)
	if code != http.StatusBadGateway || out["error"] != "inbox does not own the thread" {
		t.Errorf("done: %d %v", code, out)
	}
}

func TestInboxStreamsUpdates(t *testing.T) {
	in, srv, _ := newInbox(t)
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	next := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			if strings.HasPrefix(line, "event: ") {
				return strings.TrimSpace(line)
			}
		}
	}
	if ev := next(); ev != "event: update" { // the first, so a page loads at once
		t.Fatalf("first event %q", ev)
	}
	deliver(t, srv.URL, "dlv_1", "messaging", "inbox", pass("asked", time.Now().UnixMilli()))
	if ev := next(); ev != "event: update" {
		t.Fatalf("after a delivery: %q", ev)
	}
	in.Close() // a server shutting down ends the stream
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
}

func TestInboxServesThePage(t *testing.T) {
	_, srv, _ := newInbox(t)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`id="reply-text"`)) {
		t.Fatalf("page: %d %.200s", resp.StatusCode, b)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{HookSecret: "", Baton: "http://x"},
		{HookSecret: hookSecret, Baton: ""},
		{HookSecret: hookSecret, Baton: "http://x", Done: "close"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
