package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts a headless Chromium for the test. Without one it skips
// loudly, unless BATON_REQUIRE_BROWSER is set (scripts/test sets it once
// it has installed Chromium), where a missing browser fails the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("BATON_CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path != "" {
			break
		}
		path, _ = exec.LookPath(name)
	}
	if path == "" {
		if os.Getenv("BATON_REQUIRE_BROWSER") != "" {
			t.Fatal("no Chromium found, and BATON_REQUIRE_BROWSER is set: install Debian's chromium or set BATON_CHROMIUM")
		}
		t.Skip("\n*** SKIPPED: no Chromium on this machine, so the inbox's browser test did not run.\n" +
			"*** bash scripts/test installs Debian's chromium; or set BATON_CHROMIUM to a Chrome binary. ***")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 760),
		// The machine's network is closed: nothing may call home.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	return ctx
}

// TestBrowserPersonToAgentAndBack drives the demo as its users do: a
// person on the fake platform's chat page asks for a human, two agents
// have the inbox open, one replies and presses Done. The platform, not
// the page, says whether it worked.
func TestBrowserPersonToAgentAndBack(t *testing.T) {
	ctx := browser(t)
	d := startTestDemo(t)
	const psid = "7000000000000003"

	// The person writes on the chat page.
	person := ctx
	chat := fmt.Sprintf("%s/_platform/chat?page=%s&psid=%s", d.platformURL, demoPage, psid)
	if err := chromedp.Do(person,
		chromedp.Navigate(chat),
		// The page list loads first: a message sent before would have no page.
		chromedp.WaitReady(chromedp.CSS(`#page option[value="`+demoPage+`"]`)),
		chromedp.SendKeys(chromedp.CSS(`#text`), "What are your hours?"),
		chromedp.Click(chromedp.CSS(`#send button`)),
		chromedp.WaitVisible(chromedp.CSS(`#log .m.out`)),
	); err != nil {
		t.Fatalf("chat page: %v", err)
	}
	reply, err := chromedp.Run(person, chromedp.Text(chromedp.CSS(`#log .m.out`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(person,
		chromedp.SendKeys(chromedp.CSS(`#text`), "I want a human"),
		chromedp.Click(chromedp.CSS(`#send button`)),
	); err != nil {
		t.Fatalf("chat page: %v", err)
	}
	if !strings.Contains(reply, "We're open") {
		t.Fatalf("the bot answered %q", reply)
	}
	eventually(t, "the inbox to own the thread", func() bool { return ownerOf(d.thread(t, psid)) == demoInboxID })

	// Two agents open the inbox.
	agentA, cancelA := chromedp.NewContext(ctx)
	defer cancelA()
	agentB, cancelB := chromedp.NewContext(ctx)
	defer cancelB()
	row := `#list li[data-psid="` + psid + `"]`
	for _, agent := range []context.Context{agentA, agentB} {
		if err := chromedp.Do(agent, chromedp.Navigate(d.inboxURL+"/"), chromedp.WaitVisible(chromedp.CSS(row)),
			chromedp.WaitVisible(chromedp.CSS(`#status.live`))); err != nil {
			t.Fatalf("inbox page: %v", err)
		}
	}
	why, err := chromedp.Run(agentA, chromedp.Text(chromedp.CSS(`#why`)))
	if err != nil {
		t.Fatal(err)
	}
	history, err := chromedp.Run(agentA, chromedp.Text(chromedp.CSS(`#messages`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(why, "escalation human: word human") {
		t.Errorf("why = %q", why)
	}
	for _, want := range []string{"What are your hours?", "We're open", "I want a human", "Connecting you with a person"} {
		if !strings.Contains(history, want) {
			t.Errorf("the agent does not see %q in\n%s", want, history)
		}
	}

	// Agent A replies; agent B sees it live, without a reload.
	agentMsg := `#messages .msg.agent`
	if err := chromedp.Do(agentA,
		chromedp.SendKeys(chromedp.CSS(`#reply-text`), "Hi, Anna here. How can I help?"),
		chromedp.Click(chromedp.CSS(`#reply-send`)),
		chromedp.WaitVisible(chromedp.CSS(agentMsg)),
	); err != nil {
		t.Fatalf("reply: %v", err)
	}
	if err := chromedp.Do(agentB, chromedp.WaitVisible(chromedp.CSS(agentMsg))); err != nil {
		t.Fatalf("the second agent did not see the reply: %v", err)
	}
	if path := os.Getenv("BATON_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(agentA, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Done: the conversation leaves both agents' lists.
	if err := chromedp.Do(agentA, chromedp.Click(chromedp.CSS(`#done`)), chromedp.WaitNotPresent(chromedp.CSS(row))); err != nil {
		t.Fatalf("done: %v", err)
	}
	if err := chromedp.Do(agentB, chromedp.WaitNotPresent(chromedp.CSS(row))); err != nil {
		t.Fatalf("the second agent still lists it: %v", err)
	}

	st := d.thread(t, psid)
	if ownerOf(st) != demoBotID {
		t.Errorf("after Done the platform says the owner is %q, want the FAQ bot %s", ownerOf(st), demoBotID)
	}
	if s := said(st); len(s) == 0 || s[len(s)-1] != "inbox: Hi, Anna here. How can I help?" {
		t.Errorf("the person saw %q", s)
	}
	// And the person's chat page shows the agent's reply.
	if err := chromedp.Do(person, chromedp.WaitVisible(chromedp.Search(`//div[@id="log"]/div[contains(., "Anna here")]`))); err != nil {
		t.Errorf("chat page: %v", err)
	}
}
