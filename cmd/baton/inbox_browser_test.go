package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The inbox as a support team meets it, in a real Chromium against the
// whole demo (the fake platform, Baton, the FAQ bot and the inbox over
// real sockets). The platform, not the page, says what the person saw.

// agentTab opens a browser context of its own (its own cookies) and
// signs name in to the inbox.
func agentTab(t *testing.T, browserCtx context.Context, d *demo, name string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.inboxURL+"/"),
		chromedp.WaitVisible(chromedp.ID(`#login-name`)),
		chromedp.SendKeys(chromedp.ID(`#login-name`), name),
		chromedp.SendKeys(chromedp.ID(`#login-password`), d.passwords[name]),
		chromedp.Click(chromedp.ID(`#login-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#status.live`)),
	); err != nil {
		t.Fatalf("%s signs in: %v", name, err)
	}
	return ctx
}

// escalate has the person ask for a human and waits until the inbox owns
// the thread.
func (d *demo) escalate(t *testing.T, psid string) {
	t.Helper()
	d.personWrites(t, psid, "what are your hours?")
	d.personWrites(t, psid, "I want a human")
	eventually(t, "the inbox to own the thread", func() bool { return ownerOf(d.thread(t, psid)) == demoInboxID })
}

// advance moves the one clock of the platform, Baton and the inbox.
func (d *demo) advance(t *testing.T, by time.Duration) {
	t.Helper()
	call(t, http.MethodPost, d.platformURL+"/_platform/clock", fmt.Sprintf(`{"advance":%q}`, by.String()), nil)
}

// screenshot saves the page into docs/ when BATON_SCREENSHOTS is set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("BATON_SCREENSHOTS") == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// text reads the text of the element with id.
func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("text of #%s: %v", id, err)
	}
	return s
}

// openRow waits for the conversation's row and clicks it in the page:
// the list is redrawn by live updates, and a click of chromedp's own
// could land between finding the row and pressing it.
func openRow(psid string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := chromedp.WaitVisible(chromedp.CSS(rowOf(psid)))(ctx, t); err != nil {
			return chromedp.Void{}, err
		}
		_, err := chromedp.Evaluate[bool](`(() => { document.querySelector('`+rowOf(psid)+`').click(); return true; })()`)(ctx, t)
		return chromedp.Void{}, err
	}
}

func rowOf(psid string) string { return `#list li[data-psid="` + psid + `"]` }

// TestBrowserInboxTwoAgents: Anna and Ben sign in; Anna claims, Ben sees
// the claim live; Anna replies (the person sees it under her persona),
// keeps a private note (the person never sees it), and presses Done,
// which asks first and sends the closing message she edited.
func TestBrowserInboxTwoAgents(t *testing.T) {
	ctx := browser(t)
	d := startTestDemo(t)
	const psid = "7000000000000003"
	d.escalate(t, psid)

	anna, ben := agentTab(t, ctx, d, "anna"), agentTab(t, ctx, d, "ben")
	row := rowOf(psid)
	for _, a := range []context.Context{anna, ben} {
		if err := chromedp.Do(a, chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
			t.Fatalf("the conversation is not listed: %v", err)
		}
	}
	if err := chromedp.Do(anna, openRow(psid), chromedp.WaitVisible(chromedp.CSS(`#messages .msg.person`))); err != nil {
		t.Fatal(err)
	}
	why, history := text(t, anna, "why"), text(t, anna, "messages")
	if !strings.Contains(why, "escalation human: word human") {
		t.Errorf("why = %q", why)
	}
	for _, want := range []string{"what are your hours?", "We're open", "I want a human", "Connecting you with a person"} {
		if !strings.Contains(history, want) {
			t.Errorf("the agent does not see %q in\n%s", want, history)
		}
	}

	// Anna claims; Ben's list says so without a reload.
	if err := chromedp.Do(anna, chromedp.Click(chromedp.ID(`#claim`)),
		chromedp.WaitVisible(chromedp.Search(`//span[@id="claimed-by" and .="You have it"]`))); err != nil {
		t.Fatalf("claim: %v", err)
	}
	if err := chromedp.Do(ben, chromedp.WaitVisible(`//li[@data-psid="`+psid+`"]/div[contains(@class,"claim") and contains(., "Anna has it")]`)); err != nil {
		t.Fatalf("Ben does not see Anna's claim: %v", err)
	}

	// Anna replies; the person gets it as Anna.
	if err := chromedp.Do(anna,
		chromedp.SendKeys(chromedp.ID(`#reply-text`), "Hi, Anna here. How can I help?"),
		chromedp.Click(chromedp.ID(`#reply-send`)),
		chromedp.WaitVisible(chromedp.CSS(`#messages .msg.agent`)),
	); err != nil {
		t.Fatalf("reply: %v", err)
	}
	eventually(t, "the reply at the person, under Anna's persona", func() bool {
		s := said(d.thread(t, psid))
		return len(s) > 0 && s[len(s)-1] == "inbox (Anna): Hi, Anna here. How can I help?"
	})
	// Ben's list shows the reply as the last message (then it settles).
	if err := chromedp.Do(ben, chromedp.WaitVisible(chromedp.Search(`//li[@data-psid="`+psid+`"]/div[@class="last" and contains(., "Anna here")]`)),
		openRow(psid), chromedp.WaitVisible(chromedp.CSS(`#messages .msg.agent`))); err != nil {
		t.Fatalf("Ben does not see the reply: %v", err)
	}
	// And the person's chat page on the fake platform shows it.
	person, cancelPerson := chromedp.NewContext(ctx)
	defer cancelPerson()
	if err := chromedp.Do(person, chromedp.Navigate(fmt.Sprintf("%s/_platform/chat?page=%s&psid=%s", d.platformURL, demoPage, psid)),
		chromedp.WaitVisible(chromedp.Search(`//div[@id="log"]/div[contains(., "Anna here")]`))); err != nil {
		t.Errorf("chat page: %v", err)
	}

	// A private note: Ben sees it, the person never does.
	if err := chromedp.Do(anna,
		chromedp.Click(chromedp.ID(`#note-mode`)),
		chromedp.SendKeys(chromedp.ID(`#reply-text`), "Customer since 2019, be kind"),
		chromedp.Click(chromedp.ID(`#reply-send`)),
		chromedp.WaitVisible(chromedp.CSS(`#messages .msg.note`)),
		chromedp.Click(chromedp.ID(`#note-mode`)),
	); err != nil {
		t.Fatalf("note: %v", err)
	}
	if err := chromedp.Do(ben, chromedp.WaitVisible(chromedp.Search(`//div[contains(@class,"note")]/div[.="Customer since 2019, be kind"]`))); err != nil {
		t.Fatalf("Ben does not see the note: %v", err)
	}
	for _, s := range said(d.thread(t, psid)) {
		if strings.Contains(s, "Customer since") {
			t.Fatalf("the person saw the note: %q", s)
		}
	}
	screenshot(t, anna, "inbox.png")

	// Done asks first, with the configured closing message, editable.
	if err := chromedp.Do(anna, chromedp.Click(chromedp.ID(`#done`)), chromedp.WaitVisible(chromedp.ID(`#done-dialog`))); err != nil {
		t.Fatalf("done dialog: %v", err)
	}
	closing, err := chromedp.Run(anna, chromedp.Value(chromedp.ID("closing")))
	if err != nil {
		t.Fatal(err)
	}
	if closing != "Thanks for writing! Our bot is back if you need anything else." {
		t.Errorf("closing message %q", closing)
	}
	if err := chromedp.Do(anna, chromedp.Click(chromedp.ID(`#done-cancel`)), chromedp.WaitNotVisible(chromedp.ID(`#done-dialog`))); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if ownerOf(d.thread(t, psid)) != demoInboxID {
		t.Fatal("Cancel handed the conversation back")
	}
	if err := chromedp.Do(anna, chromedp.Click(chromedp.ID(`#done`)), chromedp.WaitVisible(chromedp.ID(`#done-dialog`)),
		chromedp.SetValue(chromedp.ID(`#closing`), "Thanks, Anna signing off!"),
		chromedp.Click(chromedp.ID(`#done-confirm`)),
		chromedp.WaitNotPresent(chromedp.CSS(row))); err != nil {
		t.Fatalf("done: %v", err)
	}
	if err := chromedp.Do(ben, chromedp.WaitNotPresent(chromedp.CSS(row))); err != nil {
		t.Fatalf("Ben still lists it: %v", err)
	}
	st := d.thread(t, psid)
	if ownerOf(st) != demoBotID {
		t.Errorf("after Done the platform says the owner is %q, want the FAQ bot", ownerOf(st))
	}
	if s := said(st); s[len(s)-1] != "inbox (Anna): Thanks, Anna signing off!" {
		t.Errorf("the person saw %q", s)
	}
}

// inView reports whether the element matched by sel is wholly inside the
// window and inside its scrolling parent.
const inViewJS = `(function(sel){
  const e = document.querySelector(sel); if (!e) return "missing";
  const r = e.getBoundingClientRect(), box = document.getElementById("messages").getBoundingClientRect();
  if (r.top < 0 || r.bottom > window.innerHeight + 0.5) return "outside the window: " + r.top + ".." + r.bottom + " of " + window.innerHeight;
  if (e.closest("#messages") && (r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)) { const b = document.getElementById("messages"); return "scrolled away: " + r.top + ".." + r.bottom + " in " + box.top + ".." + box.bottom + " (scrolled " + b.scrollTop + " of " + b.scrollHeight + ", shows " + b.clientHeight + ")"; }
  return "ok";
})(%q)`

func inView(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(inViewJS, sel)))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestBrowserInboxLongConversationSmallWindow: 200 messages in an
// 800x600 window: the reply box stays in view, the newest message is in
// view on open and when a new one comes, the history scrolls, and an
// agent who scrolled up is not pulled down.
func TestBrowserInboxLongConversationSmallWindow(t *testing.T) {
	ctx := browser(t)
	d := startTestDemo(t)
	const psid = "7000000000000004"
	d.escalate(t, psid)
	for i := 1; i <= 200; i++ {
		d.personWrites(t, psid, fmt.Sprintf("message number %d", i))
	}
	anna := agentTab(t, ctx, d, "anna")
	last := `#messages .msg.person:last-child`
	if err := chromedp.Do(anna, chromedp.EmulateViewport(800, 600),
		openRow(psid),
		chromedp.WaitVisible(chromedp.Search(`//div[@id="messages"]/div[contains(., "message number 200")]`))); err != nil {
		t.Fatalf("open: %v", err)
	}
	for _, sel := range []string{"#reply-text", "#reply-send", last} {
		if got := inView(t, anna, sel); got != "ok" {
			t.Errorf("%s: %s", sel, got)
		}
	}
	scrollable, err := chromedp.Run(anna, chromedp.Evaluate[bool](`(() => { const b = document.getElementById("messages"); return b.scrollHeight > b.clientHeight * 3; })()`))
	if err != nil || !scrollable {
		t.Fatalf("the history does not scroll: %v", err)
	}
	screenshot(t, anna, "inbox-small.png")

	// A new message while at the bottom: in view.
	d.personWrites(t, psid, "are you still there?")
	if err := chromedp.Do(anna, chromedp.WaitVisible(chromedp.Search(`//div[@id="messages"]/div[contains(., "are you still there?")]`))); err != nil {
		t.Fatal(err)
	}
	if got := inView(t, anna, last); got != "ok" {
		t.Errorf("the new message: %s", got)
	}
	// Scrolled up to read: a new message does not pull the agent down,
	// a button offers to.
	if _, err := chromedp.Run(anna, chromedp.Evaluate[float64](`document.getElementById("messages").scrollTop = 0`)); err != nil {
		t.Fatal(err)
	}
	d.personWrites(t, psid, "hello?")
	if err := chromedp.Do(anna, chromedp.WaitVisible(chromedp.ID(`#jump`))); err != nil {
		t.Fatal(err)
	}
	top, err := chromedp.Run(anna, chromedp.Evaluate[float64](`document.getElementById("messages").scrollTop`))
	if err != nil {
		t.Fatal(err)
	}
	if top != 0 {
		t.Errorf("scrolled to %v while the agent read the history", top)
	}
	if got := inView(t, anna, "#reply-text"); got != "ok" {
		t.Errorf("reply box after scrolling: %s", got)
	}
	if err := chromedp.Do(anna, chromedp.Click(chromedp.ID(`#jump`)), chromedp.WaitNotVisible(chromedp.ID(`#jump`))); err != nil {
		t.Fatal(err)
	}
	if got := inView(t, anna, last); got != "ok" {
		t.Errorf("after the jump: %s", got)
	}
}

// TestBrowserInboxHoldsTheReturnWhileTyping: the agents are warned before
// Baton's return rule hands a conversation back; while Anna types, the
// rule waits past its time; when she stops, it fires.
func TestBrowserInboxHoldsTheReturnWhileTyping(t *testing.T) {
	ctx := browser(t)
	free := "127.0.0.1:0"
	d, err := startDemo(demoOptions{Platform: free, Public: free, Admin: free, Bot: free, Inbox: free, ReturnAfter: 10 * time.Minute,
		TypingHold: 30 * time.Minute, WarnBefore: 2 * time.Minute, InboxRefresh: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	const psid = "7000000000000005"
	d.escalate(t, psid)
	eventually(t, "the return timer", func() bool { _, ok := d.returnAt(t, psid); return ok })
	anna := agentTab(t, ctx, d, "anna")
	if err := chromedp.Do(anna, openRow(psid), chromedp.WaitVisible(chromedp.CSS(`#messages .msg.person`))); err != nil {
		t.Fatal(err)
	}

	d.advance(t, 9*time.Minute) // a minute before the return
	if err := chromedp.Do(anna, chromedp.WaitVisible(chromedp.ID(`#warning`))); err != nil {
		t.Fatalf("no warning before the return: %v", err)
	}
	countdown := text(t, anna, "countdown")
	if !strings.HasPrefix(countdown, "0:") && !strings.HasPrefix(countdown, "1:") {
		t.Errorf("countdown %q, want about a minute", countdown)
	}
	screenshot(t, anna, "inbox-warning.png")

	// Anna types: Baton holds the return; the warning goes.
	if err := chromedp.Do(anna, chromedp.SendKeys(chromedp.ID(`#reply-text`), "Let me check that for you"),
		chromedp.WaitNotVisible(chromedp.ID(`#warning`))); err != nil {
		t.Fatalf("typing: %v", err)
	}
	eventually(t, "Baton's hold", func() bool { at, ok := d.returnAt(t, psid); return ok && at.Sub(d.clock.Now()) > 20*time.Minute })
	d.advance(t, 3*time.Minute) // past the return time
	at, ok := d.returnAt(t, psid)
	if !ok || !at.After(d.clock.Now()) || ownerOf(d.thread(t, psid)) != demoInboxID {
		t.Fatalf("the return was not held: job at %v (%v), now %v, owner %s", at, ok, d.clock.Now(), ownerOf(d.thread(t, psid)))
	}

	// She stops (empties the box): the return fires, the row goes.
	if _, err := chromedp.Run(anna, chromedp.Evaluate[bool](`(() => { const t = document.getElementById("reply-text"); t.focus(); t.select(); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(anna, chromedp.SendKeys(chromedp.ID(`#reply-text`), kb.Backspace)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the return once Anna stopped", func() bool { return ownerOf(d.thread(t, psid)) == demoBotID })
	if err := chromedp.Do(anna, chromedp.WaitNotPresent(chromedp.CSS(rowOf(psid)))); err != nil {
		t.Fatalf("still listed after the return: %v", err)
	}
}

// returnAt is the thread's pending return job in Baton's admin API.
func (d *demo) returnAt(t *testing.T, psid string) (time.Time, bool) {
	t.Helper()
	var th struct {
		Pending []struct {
			Rule string
			At   time.Time
		}
	}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/admin/threads/%s/%s", d.adminURL, demoPage, psid), nil)
	req.Header.Set("Authorization", "Bearer "+d.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&th) != nil {
		return time.Time{}, false
	}
	for _, j := range th.Pending {
		if j.Rule == "return" {
			return j.At, true
		}
	}
	return time.Time{}, false
}

// TestBrowserInboxSurvivesRestart: the inbox restarts; the agent is still
// signed in, and the claim, the note and the conversation are back.
func TestBrowserInboxSurvivesRestart(t *testing.T) {
	ctx := browser(t)
	d := startTestDemo(t)
	const psid = "7000000000000006"
	d.escalate(t, psid)
	anna := agentTab(t, ctx, d, "anna")
	if err := chromedp.Do(anna, openRow(psid),
		chromedp.Click(chromedp.ID(`#claim`)),
		chromedp.WaitVisible(chromedp.Search(`//span[@id="claimed-by" and .="You have it"]`)),
		chromedp.Click(chromedp.ID(`#note-mode`)),
		chromedp.SendKeys(chromedp.ID(`#reply-text`), "Asked about a refund"),
		chromedp.Click(chromedp.ID(`#reply-send`)),
		chromedp.WaitVisible(chromedp.CSS(`#messages .msg.note`))); err != nil {
		t.Fatal(err)
	}
	// Down for a while: what the person says meanwhile is in Baton's
	// transcript, which the inbox reads when it starts again.
	if err := d.stopInboxNow(); err != nil {
		t.Fatal(err)
	}
	d.personWrites(t, psid, "hello, anyone there?")
	if err := d.startInbox(nil); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(anna, chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`#status.live`)),
		openRow(psid),
		chromedp.WaitVisible(chromedp.Search(`//span[@id="claimed-by" and .="You have it"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#messages .msg.note`))); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if err := chromedp.Do(anna, chromedp.WaitVisible(chromedp.Search(`//div[@id="messages"]/div[contains(., "hello, anyone there?")]`))); err != nil {
		t.Fatalf("what came while the inbox was down: %v", err)
	}
	history := text(t, anna, "messages")
	var conv struct {
		Conversation struct {
			Synced time.Time `json:"synced"`
		} `json:"conversation"`
	}
	d.signIn(t, "anna").call(t, http.MethodGet, fmt.Sprintf("%s/api/conversations/%s/%s", d.inboxURL, demoPage, psid), "", &conv)
	if conv.Conversation.Synced.IsZero() {
		t.Error("the conversation was not filled from Baton's transcript")
	}
	for _, want := range []string{"what are your hours?", "I want a human", "Asked about a refund", "Anna claimed it", "hello, anyone there?"} {
		if !strings.Contains(history, want) {
			t.Errorf("after the restart the agent does not see %q in\n%s", want, history)
		}
	}
	// The claim still holds Baton's return rule.
	eventually(t, "the claim's hold renewed", func() bool { at, ok := d.returnAt(t, psid); return ok && at.After(d.clock.Now().Add(3*time.Minute)) })
}
