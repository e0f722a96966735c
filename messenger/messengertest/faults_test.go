package messengertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// Faults are driven over HTTP like everything else: POST /_platform/faults,
// then the real messenger.Client calls the Graph API and sees what a
// client of Meta would see.

const page2 = "200300400500600"

var credA2 = messenger.Credentials{PageID: page2, AccessToken: "TOKEN_A2"}

// addFault adds a fault through the control surface and returns it as
// stored.
func (e *env) addFault(body any) messengertest.Fault {
	e.t.Helper()
	var f messengertest.Fault
	if st := e.ctl("POST", "/_platform/faults", body, &f); st != http.StatusCreated {
		e.t.Fatalf("add fault %v: status %d", body, st)
	}
	if f.ID == "" {
		e.t.Fatalf("add fault %v: answer has no id", body)
	}
	return f
}

func (e *env) faults() []messengertest.Fault {
	e.t.Helper()
	var out struct{ Faults []messengertest.Fault }
	if st := e.ctl("GET", "/_platform/faults", nil, &out); st != http.StatusOK {
		e.t.Fatalf("list faults: status %d", st)
	}
	return out.Faults
}

// lastCall is the most recent recorded call on edge, as
// GET /_platform/calls shows it.
func (e *env) lastCall(edge string) messengertest.Call {
	e.t.Helper()
	var out struct{ Calls []messengertest.Call }
	e.ctl("GET", "/_platform/calls?edge="+edge, nil, &out)
	if len(out.Calls) == 0 {
		e.t.Fatalf("no %s call recorded", edge)
	}
	return out.Calls[len(out.Calls)-1]
}

// clientWith is a Graph client on the platform that sends with hc (which
// gets a transport of its own), with no retries.
func (e *env) clientWith(hc *http.Client) *messenger.Client {
	e.t.Helper()
	tr := &http.Transport{}
	e.t.Cleanup(tr.CloseIdleConnections)
	hc.Transport = tr
	c, err := messenger.NewClient(messenger.ClientOptions{BaseURL: e.url, Version: "v21.0", HTTPClient: hc, MaxAttempts: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// waitKind waits until the bot has received an event of kind, and returns
// (and forgets) everything it received.
func (b *bot) waitKind(kind messenger.Kind) []received {
	b.t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		for _, r := range b.events {
			if r.Event.Kind() == kind {
				out := b.events
				b.events = nil
				b.mu.Unlock()
				return out
			}
		}
		b.mu.Unlock()
		select {
		case <-b.got:
		case <-deadline.C:
			b.t.Fatalf("no %s webhook within %s", kind, wait)
		}
	}
}

// eventually waits, bounded, for a condition that nothing announces.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func passToB(e *env) error { return e.client.PassThreadControl(ctx(), credA, psid, botB, "") }

func TestFaultRespondAnswersLikeMeta(t *testing.T) {
	userUnavailable := `{"error":{"message":"(#551) This person isn't available right now.","type":"OAuthException","code":551,"error_subcode":1545041,"fbtrace_id":"AbCdEfGhIjK"}}`
	appLimit := `{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4,"is_transient":true,"fbtrace_id":"AbCdEfGhIjK"}}`
	notOwner := `{"error":{"message":"(#10) Message failed to send because another app is controlling this thread now.","type":"OAuthException","code":10,"error_subcode":2018300,"fbtrace_id":"AQ2lKD7UqnvqCrMs16fUNLk"}}`
	send := func(e *env) error {
		_, err := e.client.Send(ctx(), credA, &messenger.SendRequest{Recipient: messenger.Recipient{ID: psid},
			MessagingType: messenger.MessagingTypeResponse, Message: &messenger.OutgoingMessage{Text: "hi"}})
		return err
	}
	for _, tc := range []struct {
		name        string
		fault       map[string]any
		call        func(*env) error // default passToB
		edge        string           // recorded call's edge; default pass_thread_control
		status      int
		code        int
		subcode     int
		msg         string
		transient   bool
		rateLimited bool
		check       func(error) bool
	}{
		{name: "500 default body", fault: map[string]any{"edge": "pass_thread_control", "status": 500},
			status: 500, code: 2, msg: "An unexpected error has occurred. Please retry your request later.", transient: true},
		{name: "no status means 500", fault: map[string]any{"edge": "pass_thread_control"},
			status: 500, code: 2, msg: "An unexpected error has occurred. Please retry your request later.", transient: true},
		{name: "503 default body", fault: map[string]any{"edge": "pass_thread_control", "status": 503, "mode": "respond"},
			status: 503, code: 2, msg: "An unexpected error has occurred. Please retry your request later.", transient: true},
		{name: "429 default body", fault: map[string]any{"edge": "pass_thread_control", "status": 429},
			status: 429, code: 613, msg: "(#613) Calls to this api have exceeded the rate limit.", rateLimited: true},
		{name: "400 default body", fault: map[string]any{"edge": "pass_thread_control", "status": 400},
			status: 400, code: 100, msg: "(#100) Invalid parameter"},
		{name: "401 default body", fault: map[string]any{"edge": "pass_thread_control", "status": 401},
			status: 401, code: 190, msg: "Invalid OAuth access token.", check: messenger.IsBadToken},
		{name: "403 default body", fault: map[string]any{"edge": "pass_thread_control", "status": 403},
			status: 403, code: 200, msg: "(#200) Permissions error"},
		{name: "given body, app rate limit", fault: map[string]any{"edge": "pass_thread_control", "status": 400, "body": json.RawMessage(appLimit)},
			status: 400, code: 4, msg: "(#4) Application request limit reached", transient: true, rateLimited: true},
		{name: "given body, subcode", fault: map[string]any{"edge": "pass_thread_control", "status": 400, "body": json.RawMessage(userUnavailable)},
			status: 400, code: 551, subcode: 1545041, msg: "(#551) This person isn't available right now.", check: messenger.IsUserUnavailable},
		{name: "send api by path", fault: map[string]any{"path": "/v21.0/me/messages", "status": 400, "body": json.RawMessage(notOwner)},
			call: send, edge: "messages", status: 400, code: 10, subcode: 2018300,
			msg: "(#10) Message failed to send because another app is controlling this thread now.", check: messenger.IsNotOwner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.say("hello")
			e.a.take()
			e.b.take()
			f := e.addFault(tc.fault)
			call, edge := tc.call, tc.edge
			if call == nil {
				call, edge = passToB, "pass_thread_control"
			}

			err := call(e)
			var ge *messenger.Error
			if !errors.As(err, &ge) {
				t.Fatalf("got %T %v, want *messenger.Error", err, err)
			}
			if ge.HTTPStatus != tc.status || ge.Code != tc.code || ge.Subcode != tc.subcode || ge.Message != tc.msg || ge.Type != "OAuthException" || ge.FBTraceID == "" {
				t.Fatalf("got %+v, want http %d, %d/%d %q, OAuthException, fbtrace_id", ge, tc.status, tc.code, tc.subcode, tc.msg)
			}
			if messenger.IsTransient(err) != tc.transient || messenger.IsRateLimited(err) != tc.rateLimited {
				t.Fatalf("IsTransient %v, IsRateLimited %v; want %v, %v", messenger.IsTransient(err), messenger.IsRateLimited(err), tc.transient, tc.rateLimited)
			}
			if tc.check != nil && !tc.check(err) {
				t.Fatalf("%v not classified as the fault's error", err)
			}

			// Not applied: no owner, no webhook, no message.
			e.settle()
			if e.owner() != "" || len(e.b.take()) != 0 || len(e.truth().Messages) != 1 {
				t.Fatalf("a respond fault applied the call: owner %q", e.owner())
			}
			c := e.lastCall(edge)
			if c.Fault != f.ID || c.Status != tc.status || c.Error == nil || c.Error.Code != tc.code || c.Success || c.Applied {
				t.Fatalf("recorded call %+v, want fault %s, status %d, code %d", c, f.ID, tc.status, tc.code)
			}
		})
	}
}

func TestFaultWithoutAnswer(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fault       map[string]any
		timeout     time.Duration // the client's
		wantTimeout bool
	}{
		{name: "drop", fault: map[string]any{"edge": "pass_thread_control", "mode": "drop"}, timeout: wait},
		{name: "drop after a delay", fault: map[string]any{"edge": "pass_thread_control", "mode": "drop", "delay": "20ms"}, timeout: wait},
		{name: "timeout until the client gives up", fault: map[string]any{"edge": "pass_thread_control", "mode": "timeout"},
			timeout: 300 * time.Millisecond, wantTimeout: true},
		{name: "timeout held for its delay", fault: map[string]any{"edge": "pass_thread_control", "mode": "timeout", "delay": "20ms"}, timeout: wait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.say("hello")
			e.b.take()
			f := e.addFault(tc.fault)
			client := e.clientWith(&http.Client{Timeout: tc.timeout})

			err := client.PassThreadControl(ctx(), credA, psid, botB, "")
			var ge *messenger.Error
			if err == nil || errors.As(err, &ge) || !messenger.IsUncertain(err) {
				t.Fatalf("got %T %v, want an uncertain transport error", err, err)
			}
			if isTimeout(err) != tc.wantTimeout {
				t.Fatalf("timeout %v, want %v: %v", isTimeout(err), tc.wantTimeout, err)
			}

			e.settle()
			if e.owner() != "" || len(e.b.take()) != 0 {
				t.Fatalf("%s applied the call: owner %q", tc.name, e.owner())
			}
			if c := e.lastCall("pass_thread_control"); c.Fault != f.ID || c.Status != 0 || c.Success || c.Applied {
				t.Fatalf("recorded call %+v, want fault %s with no status", c, f.ID)
			}
		})
	}
}

func TestFaultAppliedButAnswerLost(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fault     map[string]any
		timeout   time.Duration
		target    messenger.ID
		applied   bool
		wantError func(t *testing.T, err error)
	}{
		{
			name: "apply_then_timeout", fault: map[string]any{"edge": "pass_thread_control", "mode": "apply_then_timeout"},
			timeout: 500 * time.Millisecond, target: botB, applied: true,
			wantError: func(t *testing.T, err error) {
				if !messenger.IsUncertain(err) || !isTimeout(err) {
					t.Fatalf("got %T %v, want the client's timeout", err, err)
				}
			},
		},
		{
			name: "apply_then_respond", fault: map[string]any{"edge": "pass_thread_control", "mode": "apply_then_respond", "status": 500},
			timeout: wait, target: botB, applied: true,
			wantError: func(t *testing.T, err error) {
				if ge, ok := err.(*messenger.Error); !ok || ge.Code != 2 || !messenger.IsTransient(err) {
					t.Fatalf("got %T %v, want a transient code 2", err, err)
				}
			},
		},
		{
			name: "apply_then_respond refused by the rules", fault: map[string]any{"edge": "pass_thread_control", "mode": "apply_then_respond", "status": 502},
			timeout: wait, target: "999", applied: false,
			wantError: func(t *testing.T, err error) {
				if ge, ok := err.(*messenger.Error); !ok || ge.HTTPStatus != 502 || ge.Code != 2 {
					t.Fatalf("got %T %v, want the fault's answer", err, err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.say("hello")
			e.b.take()
			f := e.addFault(tc.fault)
			client := e.clientWith(&http.Client{Timeout: tc.timeout})

			tc.wantError(t, client.PassThreadControl(ctx(), credA, psid, tc.target, "lost"))

			if !tc.applied {
				e.settle()
				if e.owner() != "" || len(e.b.take()) != 0 {
					t.Fatalf("a refused call changed the thread: owner %q", e.owner())
				}
			} else {
				// Meta applied it: the new owner was told, and owns the thread.
				got := e.b.waitKind(messenger.KindPassThreadControl)
				if kinds(got) != "messaging:pass_thread_control" || got[0].Event.PassThreadControl.Metadata != "lost" {
					t.Fatalf("new owner got %q", kinds(got))
				}
				if e.owner() != botB {
					t.Fatalf("owner %q, want %s", e.owner(), botB)
				}
			}
			if c := e.lastCall("pass_thread_control"); c.Fault != f.ID || c.Applied != tc.applied || c.Success {
				t.Fatalf("recorded call %+v, want fault %s, applied %v", c, f.ID, tc.applied)
			}
		})
	}
}

func TestFaultCountDecrementsAndExpires(t *testing.T) {
	e := newEnv(t)
	owner := func() error { _, err := e.client.ThreadOwner(ctx(), credA, psid); return err }

	f := e.addFault(map[string]any{"edge": "thread_owner", "status": 503, "count": 2})
	if f.Count != 2 || f.Remaining != 2 || f.Fired != 0 || f.Mode != messengertest.FaultRespond || f.Status != 503 {
		t.Fatalf("stored fault %+v", f)
	}
	if !messenger.IsTransient(owner()) {
		t.Fatal("first call not faulted")
	}
	if got := e.faults(); len(got) != 1 || got[0].Remaining != 1 || got[0].Fired != 1 {
		t.Fatalf("after one call: %+v", got)
	}
	if !messenger.IsTransient(owner()) {
		t.Fatal("second call not faulted")
	}
	if got := e.faults(); len(got) != 0 {
		t.Fatalf("a used-up fault is still listed: %+v", got)
	}
	must(t, owner())

	// Count 0 lasts until cleared.
	f = e.addFault(map[string]any{"edge": "thread_owner"})
	for range 3 {
		if owner() == nil {
			t.Fatal("an unlimited fault stopped firing")
		}
	}
	if got := e.faults(); len(got) != 1 || got[0].Remaining != -1 || got[0].Fired != 3 {
		t.Fatalf("unlimited fault after three calls: %+v", got)
	}
	if st := e.ctl("DELETE", "/_platform/faults/"+f.ID, nil, nil); st != http.StatusOK {
		t.Fatalf("delete %s: %d", f.ID, st)
	}
	must(t, owner())
}

func TestFaultNarrowing(t *testing.T) {
	e := newEnv(t, func(c *messengertest.Config) {
		c.Pages = append(c.Pages, messengertest.PageConfig{ID: page2, Mode: messengertest.ModeConversationRouting, DefaultApp: "bot-a",
			Apps: map[string]messengertest.PageAppConfig{"bot-a": {Token: credA2.AccessToken}}})
	})
	probes := []struct {
		name string
		call func() error
	}{
		{"ownerA", func() error { _, err := e.client.ThreadOwner(ctx(), credA, psid); return err }},
		{"ownerB", func() error { _, err := e.client.ThreadOwner(ctx(), credB, psid); return err }},
		{"ownerA2", func() error { _, err := e.client.ThreadOwner(ctx(), credA2, psid); return err }},
		{"feature", func() error { _, err := e.client.FeatureStatus(ctx(), credA); return err }},
		{"subscribe", func() error { return e.client.Subscribe(ctx(), credA, messenger.FieldsForConversationRouting) }},
		{"subscribed", func() error { _, err := e.client.SubscribedApps(ctx(), credA); return err }},
	}
	for _, tc := range []struct {
		name  string
		fault map[string]any
		fails string // probes that must fail, space-separated
	}{
		{"app by name", map[string]any{"edge": "thread_owner", "app": "bot-b"}, "ownerB"},
		{"app by id", map[string]any{"edge": "thread_owner", "app": botA}, "ownerA ownerA2"},
		{"page", map[string]any{"edge": "thread_owner", "page": page2}, "ownerA2"},
		{"method", map[string]any{"edge": "subscribed_apps", "method": "post"}, "subscribe"},
		{"node call", map[string]any{"edge": ""}, "feature"},
		{"exact path", map[string]any{"path": "/v21.0/me/thread_owner"}, "ownerA"},
		{"path prefix", map[string]any{"path": "/v21.0/me"}, "ownerA feature subscribe subscribed"},
		{"path prefix is by segment", map[string]any{"path": "/v21.0/me/thread"}, ""},
		{"path with edge", map[string]any{"path": "/v21.0/me", "edge": "subscribed_apps"}, "subscribe subscribed"},
		{"every call of an app", map[string]any{"path": "/", "method": "GET", "app": "bot-a"}, "ownerA ownerA2 feature subscribed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(e.p.ClearFaults)
			e.addFault(tc.fault)
			want := map[string]bool{}
			for _, n := range strings.Fields(tc.fails) {
				want[n] = true
			}
			for _, p := range probes {
				err := p.call()
				var ge *messenger.Error
				switch {
				case want[p.name] && (!errors.As(err, &ge) || ge.Code != 2):
					t.Errorf("%s: got %v, want the fault's code 2", p.name, err)
				case !want[p.name] && err != nil:
					t.Errorf("%s: got %v, want no fault", p.name, err)
				}
			}
			if got := e.p.Faults(); len(got) != 1 || got[0].Fired != len(want) {
				t.Errorf("faults %+v, want one that fired %d times", got, len(want))
			}
		})
	}
}

func TestFaultListAndDelete(t *testing.T) {
	e := newEnv(t)
	f1 := e.addFault(map[string]any{"edge": "pass_thread_control", "mode": "drop", "count": 1})
	f2 := e.addFault(map[string]any{"path": "/v21.0/me/messages", "status": 429, "delay": "1.5s", "page": pageID, "app": "bot-a"})
	f3, err := e.p.AddFault(messengertest.Fault{Edge: "messages", Status: 400, Delay: 2 * time.Second})
	must(t, err)
	if f1.ID != "f1" || f2.ID != "f2" || f3.ID != "f3" || f3.Mode != messengertest.FaultRespond || f3.Remaining != -1 {
		t.Fatalf("ids %s %s %s, f3 %+v", f1.ID, f2.ID, f3.ID, f3)
	}

	// The wire form: delay as a Go duration, remaining and fired counts.
	var raw struct{ Faults []map[string]any }
	e.ctl("GET", "/_platform/faults", nil, &raw)
	if len(raw.Faults) != 3 {
		t.Fatalf("listed %v", raw.Faults)
	}
	if g := raw.Faults[0]; g["mode"] != "drop" || g["remaining"] != 1.0 || g["fired"] != 0.0 || g["edge"] != "pass_thread_control" {
		t.Fatalf("f1 listed as %v", g)
	}
	if g := raw.Faults[1]; g["delay"] != "1.5s" || g["remaining"] != -1.0 || g["status"] != 429.0 || g["page"] != pageID || g["app"] != "bot-a" || g["path"] != "/v21.0/me/messages" {
		t.Fatalf("f2 listed as %v", g)
	}
	if got := e.faults(); got[2].Delay != 2*time.Second || got[1].Delay != 1500*time.Millisecond {
		t.Fatalf("delays decoded as %s, %s", got[2].Delay, got[1].Delay)
	}

	var cleared struct{ Cleared int }
	if st := e.ctl("DELETE", "/_platform/faults/f2", nil, &cleared); st != http.StatusOK || cleared.Cleared != 1 {
		t.Fatalf("delete f2: %d %+v", st, cleared)
	}
	if st := e.ctl("DELETE", "/_platform/faults/f2", nil, nil); st != http.StatusNotFound {
		t.Fatalf("delete f2 again: %d, want 404", st)
	}
	if got := e.p.Faults(); len(got) != 2 || got[0].ID != "f1" || got[1].ID != "f3" {
		t.Fatalf("after deleting f2: %+v", got)
	}
	if !e.p.ClearFault("f1") || e.p.ClearFault("f1") {
		t.Fatal("ClearFault does not report what it removed")
	}
	if st := e.ctl("DELETE", "/_platform/faults", nil, &cleared); st != http.StatusOK || cleared.Cleared != 1 {
		t.Fatalf("delete all: %d %+v", st, cleared)
	}
	var empty struct{ Faults []messengertest.Fault }
	if e.ctl("GET", "/_platform/faults", nil, &empty); empty.Faults == nil || len(empty.Faults) != 0 {
		t.Fatalf("after clearing: %+v, want an empty list", empty.Faults)
	}

	if _, err := e.p.AddFault(messengertest.Fault{Edge: "messages"}); err != nil {
		t.Fatal(err)
	}
	e.p.ClearFaults()
	if got := e.p.Faults(); len(got) != 0 {
		t.Fatalf("after ClearFaults: %+v", got)
	}
}

func TestFaultValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"edge":"messages","mode":"explode"}`, []string{`mode: "explode" is not one of respond, apply_then_respond, timeout, apply_then_timeout, drop`}},
		{`{"delay":"2 seconds"}`, []string{`delay: "2 seconds" is not a Go duration such as "2s"`}},
		{`{"delay":"-1s"}`, []string{`delay: -1s is negative`}},
		{`{"status":700}`, []string{`status: 700 is out of range (200 to 599)`}},
		{`{"status":99}`, []string{`status: 99 is out of range (200 to 599)`}},
		{`{"status":"500"}`, []string{`status`}},
		{`{"count":-1}`, []string{`count: -1 is negative`}},
		{`{"mode":"drop","status":500}`, []string{`status: mode drop answers nothing`}},
		{`{"mode":"timeout","body":{"error":{}}}`, []string{`status: mode timeout answers nothing`}},
		{`{"status":204}`, []string{`body: required with status 204`}},
		{`{"edge":"Pass_Thread_Control"}`, []string{`edge: "Pass_Thread_Control" is not a Graph edge name`}},
		{`{"path":"v21.0/me"}`, []string{`path: "v21.0/me" does not start with /`}},
		{`{"method":"PO ST"}`, []string{`method: "PO ST" is not an HTTP method`}},
		{`{"page":"999"}`, []string{`page: no page 999 on the platform`}},
		{`{"app":"bot-c"}`, []string{`app: no app "bot-c" on the platform`}},
		{`{"edgee":"messages"}`, []string{`unknown field "edgee"`}},
		{`{"mode":"explode","status":700,"count":-2}`, []string{`mode: "explode"`, `status: 700`, `count: -2`}},
	} {
		t.Run(tc.body, func(t *testing.T) {
			req := e.newRequest("POST", "/_platform/faults", tc.body)
			var out struct{ Error string }
			if st := e.do(req, &out); st != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", st)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.Error, w) {
					t.Errorf("error %q does not say %q", out.Error, w)
				}
			}
		})
	}
	if _, err := e.p.AddFault(messengertest.Fault{Status: 400, Body: json.RawMessage(`{"error":`)}); err == nil || !strings.Contains(err.Error(), "body: not valid JSON") {
		t.Errorf("AddFault with a broken body: %v", err)
	}
	if got := e.faults(); len(got) != 0 {
		t.Fatalf("invalid faults were added: %+v", got)
	}
}

func TestCloseReleasesHeldCalls(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault map[string]any
		// held returns once the platform holds the call.
		held func(e *env)
	}{
		{name: "timeout", fault: map[string]any{"edge": "pass_thread_control", "mode": "timeout"},
			held: func(e *env) {
				// Nothing announces a call that is only held.
				eventually(e.t, "call held", func() bool { return len(e.p.Calls()) == 1 })
			}},
		{name: "apply_then_timeout", fault: map[string]any{"edge": "pass_thread_control", "mode": "apply_then_timeout"},
			held: func(e *env) { e.b.waitKind(messenger.KindPassThreadControl) }},
		{name: "respond after a long delay", fault: map[string]any{"edge": "pass_thread_control", "delay": "1h"},
			held: func(e *env) { eventually(e.t, "call delayed", func() bool { return len(e.p.Calls()) == 1 }) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.say("hello")
			e.b.take()
			e.addFault(tc.fault)
			client := e.clientWith(&http.Client{}) // waits as long as the platform holds

			// The context only bounds a broken test.
			callCtx, cancel := context.WithTimeout(ctx(), wait)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- client.PassThreadControl(callCtx, credA, psid, botB, "") }()
			tc.held(e)

			e.p.Close()
			err := <-errc
			if callCtx.Err() != nil {
				t.Fatalf("Close did not release the held call: %v", err)
			}
			if !messenger.IsUncertain(err) {
				t.Fatalf("got %T %v, want an uncertain transport error", err, err)
			}
		})
	}
}
