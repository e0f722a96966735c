package orchestrator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/batonhq/baton/internal/browsertest"

	"github.com/batonhq/baton/adapters"
)

// browser starts a headless Chromium for the test (browsertest.Start).
func browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, browsertest.Options{Width: 1280, Height: 900, Timeout: 90 * time.Second, What: "the console's browser test"})
}

// screenshot saves the page to docs/<name>.png when BATON_SCREENSHOTS=1:
// the README's pictures of the console.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("BATON_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100 is PNG; below, JPEG
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitJS waits until the page's expression is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// stable runs steps on the page, again from the start when a live
// refresh replaced the nodes they had found (the view is rebuilt on
// each change; what was set is kept across it, so the steps can be run
// again).
func stable(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) error {
	var err error
	for range 3 {
		if err = chromedp.Do(ctx, steps...); err == nil || !strings.Contains(err.Error(), "Could not find node") {
			return err
		}
	}
	return err
}

func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// TestConsoleInBrowser drives the operator console in Chromium: sign in
// (a wrong token refused), the overview's counts and the conversation
// waiting for a human, a thread's transcript and history, a pass from the
// page, a line that arrives while the thread is open, and a dead letter of
// a bot that was down, retried once it is up.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	h := newHarness(t)
	h.support.setRespond(func(d adapters.Delivery) (int, string) {
		if d.Channel == "messaging" && text(d) == "billing please" {
			return 200, `{"actions":[{"type":"pass","to":"billing-bot","metadata":"billing question"}]}`
		}
		return 200, ""
	})
	h.say("hello")
	h.support.next()
	h.say("billing please")
	h.support.next()
	h.billing.next()
	h.say("my invoice is wrong")
	h.billing.next()
	h.support.next()
	h.clock.Advance(15 * time.Minute) // nobody answered for a quarter of an hour

	// Sign in: a wrong token first.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(h.admin+"/console/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "not-the-admin-token"),
		chromedp.Submit(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`#login-error`)),
	); err != nil {
		t.Fatalf("wrong token: %v", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#token`), adminToken),
		chromedp.Submit(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`section.page[data-page="`+pageID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	// The overview: one thread, owned by billing-bot, waiting.
	for sel, want := range map[string]string{
		`table.by-state tr[data-state="secondary"] td.n`:   "1",
		`table.by-state tr[data-state="idle"] td.n`:        "0",
		`table.by-owner tr[data-owner="billing-bot"] td.n`: "1",
		`table.bots tr[data-app="support-bot"] td.health`:  "healthy",
		`#total-dead`: "0",
	} {
		if got := textOf(t, ctx, sel); got != want {
			t.Errorf("overview %s = %q, want %q", sel, got, want)
		}
	}
	if got := textOf(t, ctx, `table.waiting`); !strings.Contains(got, psid) || !strings.Contains(got, "billing-bot") {
		t.Errorf("waiting for a human: %q", got)
	}
	screenshot(t, ctx, "console-overview")

	// The thread: transcript, history, and a pass from the page.
	if err := stable(ctx, chromedp.Click(chromedp.CSS(`table.waiting a.thread-link`))); err != nil {
		t.Fatalf("open the thread: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#transcript li.entry`))); err != nil {
		t.Fatalf("open the thread: %v", err)
	}
	transcript := textOf(t, ctx, `#transcript`)
	for _, want := range []string{"hello", "billing please", "my invoice is wrong", "pass: idle → billing-bot"} {
		if !strings.Contains(transcript, want) {
			t.Errorf("transcript lacks %q:\n%s", want, transcript)
		}
	}
	if hist := textOf(t, ctx, `table.history`); !strings.Contains(hist, "billing question") || !strings.Contains(hist, "call") {
		t.Errorf("history: %q", hist)
	}
	screenshot(t, ctx, "console-thread")
	// A refresh of the view (as a live change makes) keeps what the
	// operator typed in a field that does not have the focus.
	if err := stable(ctx, chromedp.SetValue(chromedp.CSS(`#action-metadata`), "back to the bot")); err != nil {
		t.Fatalf("type the metadata: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`render().then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("refresh the view: %v", err)
	}
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#action-metadata").value`)); err != nil || got != "back to the bot" {
		t.Fatalf("the metadata after a refresh: %q, %v", got, err)
	}
	if err := stable(ctx,
		chromedp.SetValue(chromedp.CSS(`#pass-to`), "support-bot"),
		chromedp.Click(chromedp.CSS(`#do-pass`)),
	); err != nil {
		t.Fatalf("pass: %v", err)
	}
	waitJS(t, ctx, "the page to show the new owner", `document.querySelector("#thread-owner")?.textContent === "support-bot"`)
	if h.platformOwner() != supportID {
		t.Fatalf("the platform's owner after the pass: %q", h.platformOwner())
	}
	if d := h.support.next(); d.Kind != "pass_thread_control" {
		t.Fatalf("support-bot got %s after the pass", d.Kind)
	}

	// A new message shows up without a reload. The bot is down (it
	// refuses), so it becomes a dead letter.
	h.support.setRespond(func(adapters.Delivery) (int, string) { return 400, "down for maintenance" })
	h.say("is anyone there?")
	waitJS(t, ctx, "the new line, live", `document.querySelector("#transcript")?.textContent.includes("is anyone there?")`)

	// Dead letters: the bot is up again; retry from the page.
	if err := stable(ctx, chromedp.Click(chromedp.CSS(`nav a[data-view="dead"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the dead letter", `document.querySelector("table.dead td.err")?.textContent.includes("down for maintenance")`)
	screenshot(t, ctx, "console-dead")
	h.support.setRespond(nil)
	if err := stable(ctx, chromedp.Click(chromedp.CSS(`table.dead button.retry`))); err != nil {
		t.Fatal(err)
	}
	if d := h.support.next(); text(d) != "is anyone there?" {
		t.Fatalf("the bot got %q after the retry", text(d))
	}
	waitJS(t, ctx, "the dead letters to empty", `!document.querySelector("table.dead button.retry") && document.querySelector("#notice").textContent.includes("put back")`)

	// The thread list's search finds the thread by a word; a message
	// that looks like HTML is shown as text.
	h.say(`<img src=x onerror="document.title='owned'"> <b>bold</b>`)
	h.support.next()
	if err := chromedp.Do(ctx, chromedp.Navigate(h.admin+"/console/#/threads?q=invoice")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "a search hit", `document.querySelector("table.threads tr.hit a.thread-link")?.textContent === "`+psid+`"`)
	if err := stable(ctx, chromedp.Click(chromedp.CSS(`table.threads tr.hit a.thread-link`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the HTML-looking line as text", `document.querySelector("#transcript")?.textContent.includes("<b>bold</b>")`)
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#transcript img, #transcript b").length`)); err != nil || n != 0 {
		t.Errorf("a person's text became %d elements (%v)", n, err)
	}
	if title, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`)); title == "owned" {
		t.Error("a person's text ran as script")
	}
	// The list with a filter: the thread is the support bot's now.
	if err := chromedp.Do(ctx, chromedp.Navigate(h.admin+"/console/#/threads?owner=support-bot")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the filtered list", `document.querySelector("table.threads tr[data-psid='`+psid+`'] td.owner")?.textContent === "support-bot"`)

	// Recent errors shows the dead letter's error.
	if err := stable(ctx, chromedp.Click(chromedp.CSS(`nav a[data-view="errors"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "recent errors", `document.querySelector("table.errors")?.textContent.includes("down for maintenance")`)
}

// The console is on the admin listener only; the admin API takes its
// session for reads, and for changes only with the session's CSRF token.
func TestConsoleSessionAndCSRF(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/console/", "/console/login", "/console/api/session"} {
		if st := h.do("GET", h.baton+p, "", nil, nil); st != 404 {
			t.Errorf("public listener %s: %d, want 404", p, st)
		}
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(h.admin+"/console/login", url.Values{"token": {adminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var sess struct{ CSRF string }
	browserDo := func(method, path, csrf string, out any) int {
		req, _ := http.NewRequest(method, h.admin+path, nil)
		if csrf != "" {
			req.Header.Set("X-Baton-CSRF", csrf)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			_ = decodeJSON(resp, out)
		}
		return resp.StatusCode
	}
	if st := browserDo("GET", "/console/api/session", "", &sess); st != 200 || sess.CSRF == "" {
		t.Fatalf("session: %d %+v", st, sess)
	}
	h.say("hello")
	h.support.next()
	if st := browserDo("GET", "/admin/threads/"+pageID+"/"+psid, "", nil); st != 200 {
		t.Errorf("read with the session: %d", st)
	}
	if st := browserDo("POST", "/admin/threads/"+pageID+"/"+psid+"/release", "", nil); st != 403 {
		t.Errorf("a change without the CSRF token: %d, want 403", st)
	}
	if st := browserDo("POST", "/admin/threads/"+pageID+"/"+psid+"/release", "forged", nil); st != 403 {
		t.Errorf("a change with a wrong CSRF token: %d, want 403", st)
	}
	if st := browserDo("POST", "/admin/deliveries/retry?app=support-bot", sess.CSRF, nil); st != 200 {
		t.Errorf("a change with the CSRF token: %d", st)
	}
	// Signed out: the cookie goes.
	if st := browserDo("POST", "/console/logout", sess.CSRF, nil); st != 200 {
		t.Errorf("sign out: %d", st)
	}
	if st := browserDo("GET", "/admin/threads", "", nil); st != 401 {
		t.Errorf("after sign-out: %d, want 401", st)
	}
}

func decodeJSON(resp *http.Response, out any) error {
	return json.NewDecoder(resp.Body).Decode(out)
}

// An open console (its event stream) does not hold a reload of the
// config: the stream ends with the old config's console, and a new one
// hears of the next message.
func TestConsoleStreamAcrossReload(t *testing.T) {
	r := newReloader(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(r.admin+"/console/login", url.Values{"token": {adminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stream := func() (*bufio.Reader, func()) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", r.admin+"/console/api/events", nil)
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("events: %v %v", resp, err)
		}
		rd := bufio.NewReader(resp.Body)
		if line, _ := rd.ReadString('\n'); line != "retry: 2000\n" {
			t.Fatalf("first line %q", line)
		}
		rd.ReadString('\n')
		return rd, func() { cancel(); resp.Body.Close() }
	}
	old, closeOld := stream()
	defer closeOld()
	r.edit("delivery: {backoff: 20ms", "delivery: {backoff: 30ms")
	r.reload()
	for {
		if _, err := old.ReadString('\n'); err != nil {
			break // the old config's stream ended
		}
	}
	rd, closeNew := stream()
	defer closeNew()
	r.say("after the reload")
	r.support.next()
	if line, _ := rd.ReadString('\n'); line != "event: change\n" {
		t.Fatalf("after a message: %q", line)
	}
}
