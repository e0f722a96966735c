package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger/messengertest"
)

// startTestDemo runs the whole demo on free ports, as `baton demo` would.
func startTestDemo(t *testing.T) *demo {
	t.Helper()
	free := "127.0.0.1:0"
	d, err := startDemo(demoOptions{Platform: free, Public: free, Admin: free, Bot: free, Inbox: free, ReturnAfter: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	return d
}

func call(t *testing.T, method, url, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
}

// personWrites sends a message as the Facebook user and waits until the
// platform delivered its webhooks.
func (d *demo) personWrites(t *testing.T, psid, text string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"text": text})
	call(t, http.MethodPost, fmt.Sprintf("%s/_platform/pages/%s/users/%s/messages?wait=true", d.platformURL, demoPage, psid), string(b), nil)
}

func (d *demo) thread(t *testing.T, psid string) messengertest.ThreadState {
	t.Helper()
	var st messengertest.ThreadState
	call(t, http.MethodGet, fmt.Sprintf("%s/_platform/pages/%s/threads/%s", d.platformURL, demoPage, psid), "", &st)
	return st
}

// eventually polls cond: the parts under test are other servers, and
// what they do reaches the platform over HTTP, not through a channel the
// test could wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// said is what the person saw, as "app: text" for replies ("app
// (persona): text" under a persona) and "> text" for their own messages.
func said(st messengertest.ThreadState) []string {
	var out []string
	for _, m := range st.Messages {
		switch {
		case m.Direction == "in":
			out = append(out, "> "+m.Text)
		case m.Persona != "":
			out = append(out, m.App+" ("+m.Persona+"): "+m.Text)
		default:
			out = append(out, m.App+": "+m.Text)
		}
	}
	return out
}

// agentClient is an agent signed in to the demo's inbox: its cookie and
// CSRF token.
type agentClient struct {
	client *http.Client
	csrf   string
}

func (d *demo) signIn(t *testing.T, name string) *agentClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	a := &agentClient{client: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
	b, _ := json.Marshal(map[string]string{"name": name, "password": d.passwords[name]})
	resp, err := a.client.Post(d.inboxURL+"/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign in as %s: %d", name, resp.StatusCode)
	}
	var me struct{ CSRF string }
	a.call(t, http.MethodGet, d.inboxURL+"/api/me", "", &me)
	a.csrf = me.CSRF
	return a
}

func (a *agentClient) call(t *testing.T, method, url, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", a.csrf)
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
}

func ownerOf(st messengertest.ThreadState) string {
	if st.OwnerAppID == nil {
		return ""
	}
	return string(*st.OwnerAppID)
}

func TestDemoTripFromBotToHumanAndBack(t *testing.T) {
	d := startTestDemo(t)
	const psid = "7000000000000001"

	d.personWrites(t, psid, "what are your hours?")
	eventually(t, "the bot's answer", func() bool {
		s := said(d.thread(t, psid))
		return len(s) == 2 && strings.HasPrefix(s[1], "faq-bot: We're open")
	})

	d.personWrites(t, psid, "I want a human")
	eventually(t, "the inbox to own the thread", func() bool { return ownerOf(d.thread(t, psid)) == demoInboxID })
	anna := d.signIn(t, "anna")
	var list struct {
		Conversations []struct {
			PSID string `json:"psid"`
			Why  string `json:"why"`
		} `json:"conversations"`
	}
	var conv struct {
		Messages []struct{ From, Text string }
	}
	convURL := fmt.Sprintf("%s/api/conversations/%s/%s", d.inboxURL, demoPage, psid)
	eventually(t, "the conversation in the inbox, with what came before", func() bool {
		anna.call(t, http.MethodGet, d.inboxURL+"/api/conversations", "", &list)
		if len(list.Conversations) != 1 {
			return false
		}
		anna.call(t, http.MethodGet, convURL, "", &conv)
		return len(conv.Messages) >= 3
	})
	if c := list.Conversations[0]; c.PSID != psid || c.Why != "escalation human: word human" || conv.Messages[0].Text != "what are your hours?" || conv.Messages[0].From != "person" {
		t.Fatalf("inbox shows %+v %+v", c, conv)
	}

	anna.call(t, http.MethodPost, convURL+"/reply", `{"text":"Hi, Anna here"}`, nil)
	anna.call(t, http.MethodPost, convURL+"/done", `{"closing_message":""}`, nil)
	st := d.thread(t, psid)
	if ownerOf(st) != demoBotID {
		t.Fatalf("after Done the owner is %q, want the FAQ bot", ownerOf(st))
	}
	want := []string{"> what are your hours?", "faq-bot: We're open Monday to Friday, 9:00 to 18:00.", "> I want a human",
		"faq-bot: Connecting you with a person. Someone will answer here shortly.", "inbox (Anna): Hi, Anna here"}
	if got := said(st); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the person saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDemoReturnRuleOnAJumpOfTheClock(t *testing.T) {
	d := startTestDemo(t)
	const psid = "7000000000000002"
	d.personWrites(t, psid, "agent please")
	// Baton arms the return timer when it records the pass, which may
	// come after the platform's: jump only once it is armed.
	eventually(t, "the return timer", func() bool {
		var th struct{ Pending []struct{ Rule string } }
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/admin/threads/%s/%s", d.adminURL, demoPage, psid), nil)
		req.Header.Set("Authorization", "Bearer "+d.adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&th) != nil {
			return false
		}
		for _, j := range th.Pending {
			if j.Rule == "return" {
				return true
			}
		}
		return false
	})

	call(t, http.MethodPost, d.platformURL+"/_platform/clock", `{"advance":"11m"}`, nil)
	eventually(t, "the return rule to give the thread back", func() bool {
		st := d.thread(t, psid)
		s := said(st)
		return ownerOf(st) == demoBotID && len(s) > 0 && strings.HasPrefix(s[len(s)-1], "faq-bot: Our agent has stepped away")
	})
}

func TestDemoStopsCleanlyAndPrintsWhatToDo(t *testing.T) {
	free := "127.0.0.1:0"
	d, err := startDemo(demoOptions{Platform: free, Public: free, Admin: free, Bot: free, Inbox: free, ReturnAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	d.banner(&out)
	for _, want := range []string{d.platformURL + "/_platform/chat?page=" + demoPage, d.inboxURL + "/", "baton threads show -admin " + d.adminURL, d.adminURL + "/console/"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
	raw, err := os.ReadFile(d.config)
	if err != nil || !bytes.Contains(raw, []byte("after: 1m0s")) || bytes.Contains(raw, []byte(d.adminToken)) {
		t.Errorf("config %s: %v\n%s", d.config, err, raw)
	}
	// The chat page is served by the fake platform.
	resp, err := http.Get(d.platformURL + "/_platform/chat")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("chat page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// A live stream open in a browser must not hold up Ctrl-C.
	stream, err := d.signIn(t, "ben").client.Get(d.inboxURL + "/api/events")
	if err != nil || stream.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %v", err, stream)
	}
	defer stream.Body.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- d.wait(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the demo did not stop")
	}
	if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s left behind: %v", d.dir, err)
	}
	if _, err := http.Get(d.platformURL + "/_platform/pages"); err == nil {
		t.Error("the platform still answers")
	}
}

func TestDemoRefusesABusyAddress(t *testing.T) {
	d := startTestDemo(t)
	busy := strings.TrimPrefix(d.inboxURL, "http://")
	free := "127.0.0.1:0"
	_, err := startDemo(demoOptions{Platform: free, Public: free, Admin: free, Bot: free, Inbox: busy})
	if err == nil || !strings.Contains(err.Error(), "listen "+busy) {
		t.Fatalf("err = %v", err)
	}
}
