package console

import (
	"bufio"
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store/bolt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "admin-secret-0123456789"

type noHealth struct{}

func (noHealth) FailingSince(string) (time.Time, bool) { return time.Time{}, false }

func newConsole(t *testing.T, clk clock.Clock, adminToken string) *Console {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "baton.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	top, err := topology.New(&config.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return New(Deps{Store: db, Topology: top, Health: noHealth{}, Clock: clk, AdminToken: adminToken})
}

// client is a browser: a cookie jar, and no redirects followed so that
// the test sees them.
func client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func signIn(t *testing.T, c *http.Client, base, tok string) *http.Response {
	t.Helper()
	resp, err := c.PostForm(base+"/console/login", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func get(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestSignIn(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	con := newConsole(t, clk, token)
	srv := httptest.NewServer(con)
	defer srv.Close()
	c := client()

	if resp := get(t, c, srv.URL+"/console/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Fatalf("console without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := signIn(t, c, srv.URL, "wrong-token-0123456789"); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp := signIn(t, c, srv.URL, token)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("sign in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Secure || ck[0].MaxAge <= 0 || strings.Contains(ck[0].Value, token) {
		t.Fatalf("session cookie %+v", ck)
	}
	resp = get(t, c, srv.URL+"/console/")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("console: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	for _, f := range []string{"console.js", "console.css"} {
		if resp := get(t, c, srv.URL+"/console/static/"+f); resp.StatusCode != 200 {
			t.Errorf("%s: %d", f, resp.StatusCode)
		}
	}
	if resp := get(t, c, srv.URL+"/console/static/index.html"); resp.StatusCode != 404 {
		t.Errorf("static index: %d", resp.StatusCode)
	}

	// A restart (a new console, same admin token) keeps the session; a
	// new admin token ends it.
	u, _ := url.Parse(srv.URL)
	cookies := c.Jar.Cookies(u)
	for _, tc := range []struct {
		tok  string
		want int
	}{{token, 200}, {"another-admin-token-0123", http.StatusSeeOther}} {
		srv2 := httptest.NewServer(newConsole(t, clk, tc.tok))
		u2, _ := url.Parse(srv2.URL)
		c2 := client()
		c2.Jar.SetCookies(u2, cookies)
		if resp := get(t, c2, srv2.URL+"/console/"); resp.StatusCode != tc.want {
			t.Errorf("session after a restart with token %q: %d, want %d", tc.tok, resp.StatusCode, tc.want)
		}
		srv2.Close()
	}
	// A tampered cookie, and one that expired.
	tampered := client()
	tampered.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: cookies[0].Value[:len(cookies[0].Value)-2] + "xx"}})
	if resp := get(t, tampered, srv.URL+"/console/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("tampered session: %d", resp.StatusCode)
	}
	clk.Advance(sessionTTL + time.Second)
	if resp := get(t, c, srv.URL+"/console/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("expired session: %d", resp.StatusCode)
	}
}

func TestSignInOverTLSIsSecure(t *testing.T) {
	srv := httptest.NewTLSServer(newConsole(t, clock.System{}, token))
	defer srv.Close()
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp := signIn(t, c, srv.URL, token)
	if ck := resp.Cookies(); len(ck) != 1 || !ck[0].Secure {
		t.Fatalf("cookie over TLS %+v", ck)
	}
}

func TestSignInIsRateLimited(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	srv := httptest.NewServer(newConsole(t, clk, token))
	defer srv.Close()
	c := client()
	for i := range 5 {
		if resp := signIn(t, c, srv.URL, "wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	if resp := signIn(t, c, srv.URL, token); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt in a minute: %d, want 429 even with the right token", resp.StatusCode)
	}
	clk.Advance(time.Minute)
	if resp := signIn(t, c, srv.URL, token); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a minute later: %d", resp.StatusCode)
	}
	// Without an admin token nobody signs in.
	srv2 := httptest.NewServer(newConsole(t, clk, ""))
	defer srv2.Close()
	if resp := signIn(t, client(), srv2.URL, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("empty token: %d", resp.StatusCode)
	}
}

func TestAuthorizeNeedsCSRFOnChanges(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	con := newConsole(t, clk, token)
	cookie, _ := con.sessions.signIn(token, false)
	payload, _ := con.sessions.session(&http.Request{Header: http.Header{"Cookie": {cookie.String()}}})
	csrf := con.sessions.csrf(payload)
	tests := []struct {
		name, method, csrf, origin string
		signedIn                   bool
		err                        error
	}{
		{"read", "GET", "", "", true, nil},
		{"change with the token", "POST", csrf, "", true, nil},
		{"change with the token from this origin", "POST", csrf, "http://baton.test", true, nil},
		{"change without the token", "POST", "", "", true, ErrCSRF},
		{"change with another session's token", "POST", "AAAA", "", true, ErrCSRF},
		{"change from another origin", "POST", csrf, "https://evil.example", true, ErrOrigin},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "http://baton.test/admin/threads/1/2/release", nil)
		r.AddCookie(cookie)
		if tt.csrf != "" {
			r.Header.Set(CSRFHeader, tt.csrf)
		}
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		signedIn, err := con.Authorize(r)
		if signedIn != tt.signedIn || err != tt.err {
			t.Errorf("%s: %v %v, want %v %v", tt.name, signedIn, err, tt.signedIn, tt.err)
		}
	}
	r := httptest.NewRequest("GET", "http://baton.test/admin/threads", nil)
	if signedIn, err := con.Authorize(r); signedIn || err != ErrNoSession {
		t.Errorf("no cookie: %v %v", signedIn, err)
	}
}

// The event stream says "change" at each poke, and ends when the
// console closes (the admin listener's shutdown).
func TestEventsStream(t *testing.T) {
	con := newConsole(t, clock.System{}, token)
	srv := httptest.NewServer(con)
	defer srv.Close()
	c := client()
	signIn(t, c, srv.URL, token)
	if resp := get(t, client(), srv.URL+"/console/api/events"); resp.StatusCode != 401 {
		t.Fatalf("events without a session: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/console/api/events", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	if line, _ := rd.ReadString('\n'); line != "retry: 2000\n" {
		t.Fatalf("first line %q", line)
	}
	rd.ReadString('\n')
	// A page that connects (again, after a reload of Baton's config)
	// missed what changed meanwhile: it is told to read at once.
	if line, _ := rd.ReadString('\n'); line != "event: change\n" {
		t.Fatalf("on connecting %q, want a change", line)
	}
	rd.ReadString('\n')
	rd.ReadString('\n')
	con.Poke()
	if line, _ := rd.ReadString('\n'); line != "event: change\n" {
		t.Fatalf("after a poke %q", line)
	}
	rd.ReadString('\n')
	rd.ReadString('\n')
	con.Close()
	if _, err := rd.ReadString('\n'); err == nil {
		t.Fatal("the stream goes on after Close")
	}
}

// heldBody is a sign-in form whose bytes a test lets through: the
// handler has passed the rate limit when it starts reading it.
type heldBody struct {
	started chan struct{}
	release chan struct{}
	rest    *strings.Reader
	once    bool
}

func (b *heldBody) Read(p []byte) (int, error) {
	if !b.once {
		b.once = true
		close(b.started)
		<-b.release
	}
	return b.rest.Read(p)
}

// Guesses sent at once count while they are checked: a request that
// holds its body back must not let a burst past the limit.
func TestSignInLimitCountsAttemptsUnderWay(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	con := newConsole(t, clk, token)
	release := make(chan struct{})
	codes := make(chan int, 10)
	for range 10 {
		b := &heldBody{started: make(chan struct{}), release: release, rest: strings.NewReader("token=wrong")}
		r := httptest.NewRequest("POST", "http://baton.test/console/login", b)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = "192.0.2.7:4000"
		done := make(chan struct{})
		go func() {
			defer close(done)
			w := httptest.NewRecorder()
			con.ServeHTTP(w, r)
			codes <- w.Code
		}()
		select {
		case <-b.started: // past the limit, reading the form
		case <-done: // refused without reading it
		}
	}
	close(release)
	got := map[int]int{}
	for range 10 {
		got[<-codes]++
	}
	if got[http.StatusUnauthorized] != 5 || got[http.StatusTooManyRequests] != 5 {
		t.Fatalf("10 guesses at once: %v, want 5 checked (401) and 5 refused (429)", got)
	}
}
