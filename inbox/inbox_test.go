package inbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	appID      = "734567890123456"
	botAppID   = "512345678901234"
	password   = "correct horse"
)

// fakeBaton records the inbox's calls to Baton and answers them; a test
// sets its answers.
type fakeBaton struct {
	mu         sync.Mutex
	calls      []string // "METHOD path body"
	fail       bool
	transcript string // the transcript's answer; "" is a 404 (an older Baton)
}

func (f *fakeBaton) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, strings.TrimSpace(fmt.Sprintf("%s %s %s", r.Method, r.URL.RequestURI(), body)))
	fail, transcript := f.fail, f.transcript
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	p := r.URL.Path
	switch {
	case r.Header.Get("Authorization") != "Bearer inbox-token":
		w.WriteHeader(http.StatusUnauthorized)
	case fail && strings.HasPrefix(p, "/graph/"):
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278}}`)
	case fail:
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"error":{"code":"refused","message":"inbox does not own the thread"}}`)
	case strings.HasSuffix(p, "/personas"):
		io.WriteString(w, `{"id":"9001"}`)
	case strings.HasSuffix(p, "/messages"):
		io.WriteString(w, `{"recipient_id":"7123","message_id":"m_agent_`+fmt.Sprint(len(f.calls))+`"}`)
	case strings.HasPrefix(p, "/graph/"):
		io.WriteString(w, `{"first_name":"Ada","last_name":"Okafor","profile_pic":"javascript:alert(1)"}`)
	case strings.HasSuffix(p, "/transcript") && transcript == "":
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"not_found","message":"no such endpoint"}}`)
	case strings.HasSuffix(p, "/transcript"):
		io.WriteString(w, transcript)
	case strings.HasSuffix(p, "/pass") || strings.HasSuffix(p, "/release"):
		io.WriteString(w, `{"owner":"faq-bot","state":"primary"}`)
	default:
		io.WriteString(w, `{"owner":"inbox","state":"secondary","pending":[{"rule":"return","at":"2030-01-01T00:00:00Z"}]}`)
	}
}

func (f *fakeBaton) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type fixture struct {
	t     *testing.T
	in    *Inbox
	srv   *httptest.Server
	baton *fakeBaton
	data  string
}

func mustHash(tb testing.TB) string {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	return string(h)
}

func options(url, data string, hash string) Options {
	return Options{App: "inbox", AppID: appID, HookSecret: hookSecret, Baton: url, Token: "inbox-token", Data: data,
		Agents: []Agent{{Name: "anna", DisplayName: "Anna", PasswordHash: hash, Persona: true, Picture: "https://example.com/a.png"},
			{Name: "ben", DisplayName: "Ben", PasswordHash: hash}},
		ClosingMessage: "Bye!"}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, baton: &fakeBaton{}, data: filepath.Join(t.TempDir(), "inbox.db")}
	bs := httptest.NewServer(f.baton)
	t.Cleanup(bs.Close)
	f.start(options(bs.URL, f.data, mustHash(t)))
	return f
}

func (f *fixture) start(opt Options) {
	in, err := New(opt)
	if err != nil {
		f.t.Fatal(err)
	}
	f.in = in
	f.srv = httptest.NewServer(in.Handler())
	f.t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	if f.srv != nil {
		f.in.CloseStreams()
		f.srv.Close()
		f.in.Close()
		f.srv = nil
	}
}

// agent is a signed-in browser.
type agent struct {
	f      *fixture
	client *http.Client
	csrf   string
}

func (f *fixture) signIn(name string) *agent {
	f.t.Helper()
	jar, _ := cookiejar.New(nil)
	a := &agent{f: f, client: &http.Client{Jar: jar}}
	if code := a.login(name, password); code != http.StatusOK {
		f.t.Fatalf("sign in %s: %d", name, code)
	}
	var me struct{ CSRF string }
	if code := a.do("GET", "/api/me", "", &me); code != 200 || me.CSRF == "" {
		f.t.Fatalf("me: %d %+v", code, me)
	}
	a.csrf = me.CSRF
	return a
}

func (a *agent) login(name, pw string) int {
	b, _ := json.Marshal(map[string]string{"name": name, "password": pw})
	resp, err := a.client.Post(a.f.srv.URL+"/login", "application/json", bytes.NewReader(b))
	if err != nil {
		a.f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (a *agent) do(method, path, body string, out any) int {
	a.f.t.Helper()
	req, _ := http.NewRequest(method, a.f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if a.csrf != "" {
		req.Header.Set(csrfHeader, a.csrf)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// deliver POSTs a signed delivery as Baton's http adapter would.
func (f *fixture) deliver(id, channel, owner, event string) int {
	f.t.Helper()
	body, _ := json.Marshal(adapters.Delivery{ID: id, App: "inbox", PageID: "100", PSID: "7123", Channel: channel, Kind: "x", Attempt: 1,
		Thread: adapters.Thread{Owner: owner}, Event: json.RawMessage(event)})
	return f.signedPost(id, body)
}

func (f *fixture) signedPost(id string, body []byte) int {
	f.t.Helper()
	key, _ := webhook.Key(hookSecret)
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/baton", bytes.NewReader(body))
	ts := time.Now().Unix()
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", fmt.Sprint(ts))
	req.Header.Set("webhook-signature", webhook.Sign(key, id, ts, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
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

type listAnswer struct {
	Conversations []ConversationView `json:"conversations"`
}

type detailAnswer struct {
	Conversation Conversation `json:"conversation"`
	Messages     []Message    `json:"messages"`
}

func (a *agent) list() []ConversationView {
	a.f.t.Helper()
	var l listAnswer
	if code := a.do("GET", "/api/conversations", "", &l); code != 200 {
		a.f.t.Fatalf("list: %d", code)
	}
	return l.Conversations
}

func (a *agent) detail() detailAnswer {
	a.f.t.Helper()
	var d detailAnswer
	if code := a.do("GET", "/api/conversations/100/7123", "", &d); code != 200 {
		a.f.t.Fatalf("detail: %d", code)
	}
	return d
}

func said(ms []Message) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.From+": "+m.Text)
	}
	return strings.Join(out, "|")
}

func TestInboxShowsHandedOverConversationWithHistory(t *testing.T) {
	f := newFixture(t)
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	for i, d := range []struct{ id, ch, owner, ev string }{
		{"dlv_1", "standby", "faq-bot", msg("m_1", "hi", t0)},
		{"dlv_2", "standby", "faq-bot", echo("m_2", "Hi! I'm the bot", botAppID, t0+1)},
		{"dlv_3", "standby", "faq-bot", msg("m_3", "I want a human", t0+2)},
		{"dlv_4", "messaging", "inbox", pass("escalation human: word human", t0+3)},
		{"dlv_4", "messaging", "inbox", pass("escalation human: word human", t0+3)}, // Baton's retry
		{"dlv_5", "messaging", "inbox", msg("m_3", "I want a human", t0+2)},         // same mid again
	} {
		if code := f.deliver(d.id, d.ch, d.owner, d.ev); code != http.StatusNoContent {
			t.Fatalf("delivery %d: status %d", i, code)
		}
	}
	anna := f.signIn("anna")
	got := anna.list()
	if len(got) != 1 || !got[0].Assigned || got[0].Why != "escalation human: word human" || got[0].Unread != 2 {
		t.Fatalf("conversations = %+v", got)
	}
	want := "person: hi|bot: Hi! I'm the bot|person: I want a human|event: handed to the inbox: escalation human: word human"
	if s := said(anna.detail().Messages); s != want {
		t.Errorf("messages = %q, want %q", s, want)
	}
	// Read: no unread left for Anna; Ben still has two.
	if code := anna.do("POST", "/api/conversations/100/7123/read", `{"seq":99}`, nil); code != 200 {
		t.Fatalf("read: %d", code)
	}
	if u := anna.list()[0].Unread; u != 0 {
		t.Errorf("Anna's unread = %d", u)
	}
	if u := f.signIn("ben").list()[0].Unread; u != 2 {
		t.Errorf("Ben's unread = %d", u)
	}
}

func TestInboxSignIn(t *testing.T) {
	f := newFixture(t)
	anon := &agent{f: f, client: &http.Client{}}
	if code := anon.do("GET", "/api/conversations", "", nil); code != http.StatusUnauthorized {
		t.Errorf("without a session: %d", code)
	}
	jar, _ := cookiejar.New(nil)
	a := &agent{f: f, client: &http.Client{Jar: jar}}
	if code := a.login("anna", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", code)
	}
	if code := a.login("nobody", password); code != http.StatusUnauthorized {
		t.Errorf("unknown agent: %d", code)
	}
	// A cross-site form cannot sign in: not JSON.
	resp, err := a.client.Post(f.srv.URL+"/login", "application/x-www-form-urlencoded", strings.NewReader("name=anna&password=x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form sign-in: %d", resp.StatusCode)
	}

	anna := f.signIn("anna")
	u, _ := http.NewRequest("GET", f.srv.URL, nil)
	cookies := anna.client.Jar.Cookies(u.URL)
	if len(cookies) != 1 || cookies[0].Name != sessionCookie {
		t.Fatalf("cookies %+v", cookies)
	}
	// Changes without the CSRF token are refused.
	csrf := anna.csrf
	anna.csrf = ""
	if code := anna.do("POST", "/api/conversations/100/7123/note", `{"text":"x"}`, nil); code != http.StatusForbidden {
		t.Errorf("no CSRF token: %d", code)
	}
	anna.csrf = csrf + "x"
	if code := anna.do("POST", "/logout", "", nil); code != http.StatusForbidden {
		t.Errorf("wrong CSRF token: %d", code)
	}
	anna.csrf = csrf
	if code := anna.do("POST", "/logout", "", nil); code != http.StatusNoContent {
		t.Errorf("logout: %d", code)
	}
	// The session is gone on the server, not only in the browser.
	anna.client.Jar.SetCookies(u.URL, cookies)
	if code := anna.do("GET", "/api/me", "", nil); code != http.StatusUnauthorized {
		t.Errorf("after logout: %d", code)
	}
}

func TestInboxLimitsFailedSignIns(t *testing.T) {
	f := newFixture(t)
	jar, _ := cookiejar.New(nil)
	a := &agent{f: f, client: &http.Client{Jar: jar}}
	for range maxFailures {
		if code := a.login("anna", "guess"); code != http.StatusUnauthorized {
			t.Fatalf("guess: %d", code)
		}
	}
	if code := a.login("anna", password); code != http.StatusTooManyRequests {
		t.Fatalf("after %d failures: %d", maxFailures, code)
	}
}

func TestInboxTrustsTheProxyHeaderOnlyFromTheProxy(t *testing.T) {
	for _, c := range []struct {
		name    string
		proxies []string
		user    string
		want    int
	}{
		{"from the proxy", []string{"127.0.0.1"}, "ben", http.StatusOK},
		{"from the proxy, unknown agent", []string{"127.0.0.1"}, "mallory", http.StatusUnauthorized},
		{"from elsewhere", []string{"10.0.0.0/8"}, "ben", http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fixture{t: t, baton: &fakeBaton{}, data: filepath.Join(t.TempDir(), "inbox.db")}
			bs := httptest.NewServer(f.baton)
			defer bs.Close()
			opt := options(bs.URL, f.data, "")
			nets, err := ParseProxies(c.proxies)
			if err != nil {
				t.Fatal(err)
			}
			opt.Proxy = ProxyAuth{Header: "X-Forwarded-User", Proxies: nets}
			f.start(opt)
			req, _ := http.NewRequest("GET", f.srv.URL+"/api/me", nil)
			req.Header.Set("X-Forwarded-User", c.user)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
}

func TestInboxReplyNoteClaimAndDone(t *testing.T) {
	f := newFixture(t)
	f.deliver("dlv_1", "messaging", "inbox", pass("asked", time.Now().UnixMilli()))
	anna := f.signIn("anna")
	var out map[string]string
	if code := anna.do("POST", "/api/conversations/100/7123/claim", `{}`, nil); code != 200 {
		t.Fatalf("claim: %d", code)
	}
	if code := anna.do("POST", "/api/conversations/100/7123/claim", `{"agent":"ben"}`, nil); code != 200 {
		t.Fatalf("assign: %d", code)
	}
	if c := anna.list()[0]; c.ClaimedBy != "ben" {
		t.Fatalf("claimed by %q", c.ClaimedBy)
	}
	if code := anna.do("POST", "/api/conversations/100/7123/claim", `{"agent":"zed"}`, nil); code != 400 {
		t.Errorf("assign to nobody: %d", code)
	}
	if code := anna.do("POST", "/api/conversations/100/7123/reply", `{"text":"Hi, Anna here"}`, &out); code != 200 || out["message_id"] == "" {
		t.Fatalf("reply: %d %v", code, out)
	}
	if code := anna.do("POST", "/api/conversations/100/7123/reply", `{"text":"  "}`, nil); code != 400 {
		t.Errorf("empty reply: %d", code)
	}
	if code := anna.do("POST", "/api/conversations/100/7123/note", `{"text":"VIP"}`, nil); code != 200 {
		t.Errorf("note: %d", code)
	}
	// Baton's echo of the reply does not show it twice.
	f.deliver("dlv_2", "messaging", "inbox", echo(out["message_id"], "Hi, Anna here", appID, time.Now().UnixMilli()))
	want := "event: handed to the inbox: asked|event: Anna claimed it|event: Anna assigned it to Ben|agent: Hi, Anna here|note: VIP"
	if s := said(anna.detail().Messages); s != want {
		t.Errorf("messages = %q\nwant       %q", s, want)
	}
	if code := anna.do("POST", "/api/conversations/100/7123/done", `{}`, &out); code != 200 || out["owner"] != "faq-bot" {
		t.Fatalf("done: %d %v", code, out)
	}
	if got := anna.list(); len(got) != 0 {
		t.Errorf("still listed after Done: %+v", got)
	}
	var sends, acts []string
	for _, c := range f.baton.Calls() {
		switch {
		case strings.Contains(c, "/messages"):
			sends = append(sends, c)
		case strings.Contains(c, "/activity") || strings.HasSuffix(strings.Fields(c)[1], "/pass"):
			acts = append(acts, c)
		}
	}
	wantSends := []string{
		`POST /graph/v21.0/100/messages {"message":{"text":"Hi, Anna here"},"messaging_type":"RESPONSE","persona_id":"9001","recipient":{"id":"7123"}}`,
		`POST /graph/v21.0/100/messages {"message":{"text":"Bye!"},"messaging_type":"RESPONSE","persona_id":"9001","recipient":{"id":"7123"}}`,
	}
	if strings.Join(sends, "\n") != strings.Join(wantSends, "\n") {
		t.Errorf("sends:\n%s\nwant:\n%s", strings.Join(sends, "\n"), strings.Join(wantSends, "\n"))
	}
	wantActs := []string{
		`POST /v1/threads/100/7123/activity {"agent":"anna","for":"300","kind":"claimed"}`,
		`POST /v1/threads/100/7123/activity {"agent":"ben","for":"300","kind":"claimed"}`,
		`POST /v1/threads/100/7123/pass {"metadata":"done in the inbox by anna"}`,
	}
	if strings.Join(acts, "\n") != strings.Join(wantActs, "\n") {
		t.Errorf("activity:\n%s\nwant:\n%s", strings.Join(acts, "\n"), strings.Join(wantActs, "\n"))
	}
}

func TestInboxShowsBatonsAndMetasErrors(t *testing.T) {
	f := newFixture(t)
	f.deliver("dlv_1", "messaging", "inbox", pass("asked", time.Now().UnixMilli()))
	anna := f.signIn("ben") // no persona: the send is the first call to fail
	f.baton.mu.Lock()
	f.baton.fail = true
	f.baton.mu.Unlock()
	var out map[string]string
	if code := anna.do("POST", "/api/conversations/100/7123/reply", `{"text":"late"}`, &out); code != http.StatusBadGateway || !strings.Contains(out["error"], "outside of allowed window") {
		t.Errorf("reply: %d %v", code, out)
	}
	if code := anna.do("POST", "/api/conversations/100/7123/done", `{"closing_message":""}`, &out); code != http.StatusBadGateway || out["error"] != "inbox does not own the thread" {
		t.Errorf("done: %d %v", code, out)
	}
	if code := anna.do("POST", "/api/conversations/100/7123/claim", `{}`, &out); code != http.StatusConflict {
		t.Errorf("claim: %d %v", code, out)
	}
	if code := anna.do("POST", "/api/conversations/100/9999/reply", `{"text":"who?"}`, &out); code != http.StatusNotFound {
		t.Errorf("unknown conversation: %d %v", code, out)
	}
}

func TestInboxRefusesUnsignedAndMalformed(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Post(f.srv.URL+"/baton", "application/json", strings.NewReader(`{"id":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned: %d", resp.StatusCode)
	}
	if code := f.signedPost("bad", []byte(`{"id":`)); code != http.StatusBadRequest {
		t.Errorf("malformed: %d", code)
	}
}

// A restart keeps claims, notes and messages, fills in from Baton's
// transcript what came meanwhile, and keeps agents signed in.
func TestInboxSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	t0 := time.Now().Add(-time.Minute)
	f.deliver("dlv_1", "standby", "faq-bot", msg("m_1", "hi", t0.UnixMilli()))
	f.deliver("dlv_2", "messaging", "inbox", pass("asked", t0.Add(time.Second).UnixMilli()))
	anna := f.signIn("anna")
	anna.do("POST", "/api/conversations/100/7123/claim", `{}`, nil)
	anna.do("POST", "/api/conversations/100/7123/note", `{"text":"VIP"}`, nil)
	opt := f.in.opt
	f.stop()

	f.baton.mu.Lock()
	f.baton.transcript = fmt.Sprintf(`{"entries":[
		{"seq":1,"at":%q,"kind":"message","text":"hi","mid":"m_1"},
		{"seq":2,"at":%q,"kind":"handover","event":"pass"},
		{"seq":3,"at":%q,"kind":"message","text":"anyone?","mid":"m_9","attachments":[{"type":"image","url":"https://cdn.example/p.jpg"},{"type":"file","url":"javascript:alert(1)"}]},
		{"seq":4,"at":%q,"kind":"echo","app":"faq-bot","text":"Bot here","mid":"m_10"}],"next_cursor":""}`,
		t0.Format(time.RFC3339Nano), t0.Add(time.Second).Format(time.RFC3339Nano), t0.Add(2*time.Second).Format(time.RFC3339Nano), t0.Add(3*time.Second).Format(time.RFC3339Nano))
	f.baton.mu.Unlock()
	f.start(opt)
	f.in.rebuild(t.Context())

	anna.f = f
	d := anna.detail()
	if d.Conversation.ClaimedBy != "anna" || d.Conversation.Synced.IsZero() {
		t.Fatalf("after the restart: %+v", d.Conversation)
	}
	// In time order: what the transcript adds goes where it was said.
	want := "person: hi|event: handed to the inbox: asked|person: anyone?|bot: Bot here|event: Anna claimed it|note: VIP"
	if s := said(d.Messages); s != want {
		t.Errorf("messages = %q\nwant       %q", s, want)
	}
	for _, m := range d.Messages {
		if m.Mid == "m_9" && (len(m.Attachments) != 2 || m.Attachments[0].URL != "https://cdn.example/p.jpg" || m.Attachments[1].URL != "") {
			t.Errorf("attachments %+v", m.Attachments)
		}
	}
}

// The person's profile is read once; a picture that is not http(s) is
// never shown.
func TestInboxReadsTheProfile(t *testing.T) {
	f := newFixture(t)
	f.deliver("dlv_1", "messaging", "inbox", pass("asked", time.Now().UnixMilli()))
	f.in.refresh(t.Context(), "100", "7123")
	c := f.signIn("anna").list()[0]
	if c.Name != "Ada Okafor" || c.Picture != "" || !c.ReturnAt.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("conversation %+v", c)
	}
}

func TestInboxServesThePageSafely(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`id="reply-text"`)) {
		t.Fatalf("page: %d %.200s", resp.StatusCode, b)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if bytes.Contains(b, []byte("<script>")) {
		t.Error("an inline script: the CSP would block it")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	good := options("http://x", filepath.Join(dir, "a.db"), "")
	for _, change := range []func(o *Options){
		func(o *Options) { o.HookSecret = "" },
		func(o *Options) { o.Baton = "" },
		func(o *Options) { o.Done = "close" },
		func(o *Options) { o.Agents = nil },
		func(o *Options) { o.Token = "" },
	} {
		o := good
		change(&o)
		if in, err := New(o); err == nil {
			in.Close()
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestParseProxies(t *testing.T) {
	nets, err := ParseProxies([]string{"10.0.0.0/8", "192.168.1.5", "::1"})
	if err != nil || len(nets) != 3 || !nets[1].Contains(net.ParseIP("192.168.1.5")) || nets[1].Contains(net.ParseIP("192.168.1.6")) {
		t.Fatalf("%v %v", nets, err)
	}
	if _, err := ParseProxies([]string{"nope"}); err == nil {
		t.Fatal("accepted nope")
	}
}
