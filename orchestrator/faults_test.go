package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/orchestrator/recent"
)

// Failure paths end to end: the fake platform's faults make Meta fail
// the way it does, and Baton is checked through its own APIs.

const notOwnerBody = `{"error":{"message":"(#10) Message failed to send because another app is controlling this thread now.","type":"OAuthException","code":10,"error_subcode":2018300,"fbtrace_id":"AQ2lKD7UqnvqCrMs16fUNLk"}}`

// withGraphTimeout sets Baton's Graph client timeout.
func withGraphTimeout(d string) harnessOpt {
	return func(yaml *string) {
		*yaml = strings.Replace(*yaml, `version: "v21.0"}`, `version: "v21.0", timeout: `+d+`}`, 1)
	}
}

// fault adds a fault through the platform's control surface.
func (h *harness) fault(f messengertest.Fault) messengertest.Fault {
	h.t.Helper()
	var out messengertest.Fault
	if st := h.do("POST", h.platURL+"/_platform/faults", "", f, &out); st != http.StatusCreated {
		h.t.Fatalf("add fault %+v: %d", f, st)
	}
	return out
}

// apiError is the bot and admin APIs' error answer.
type apiError struct {
	Error struct {
		Code    string           `json:"code"`
		Message string           `json:"message"`
		Graph   *messenger.Error `json:"graph"`
	} `json:"error"`
}

// control calls the bot API as the app with token; out gets the thread or
// the error.
func (h *harness) control(token, op string, body map[string]string) (int, api.ThreadView, apiError) {
	h.t.Helper()
	var raw json.RawMessage
	st := h.do("POST", h.baton+"/v1/threads/"+pageID+"/"+psid+"/"+op, token, body, &raw)
	var tv api.ThreadView
	var ae apiError
	if st == http.StatusOK {
		_ = json.Unmarshal(raw, &tv)
	} else {
		_ = json.Unmarshal(raw, &ae)
	}
	return st, tv, ae
}

func (h *harness) errorsOf(kind string) []recent.Error {
	var out []recent.Error
	for _, e := range h.recentErrors() {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// lastCall is the platform's most recent call on edge.
func (h *harness) lastCall(edge string) messengertest.Call {
	h.t.Helper()
	calls := h.platform.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Edge == edge {
			return calls[i]
		}
	}
	h.t.Fatalf("no %s call", edge)
	return messengertest.Call{}
}

func lastEntry(tv api.ThreadView) api.HistoryView {
	if len(tv.History) == 0 {
		return api.HistoryView{}
	}
	return tv.History[len(tv.History)-1]
}

// Meta's 500 on a pass: the bot gets 502 with Meta's error, nothing moves,
// the operator sees it, and the next pass goes through.
func TestFaultGraph500OnPass(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	before := h.batonThread()
	f := h.fault(messengertest.Fault{Edge: "pass_thread_control", Status: 500, Mode: messengertest.FaultRespond, Count: 1})

	st, _, ae := h.control(env["SUPPORT_API"], "pass", map[string]string{"to": "billing-bot"})
	if st != http.StatusBadGateway || ae.Error.Code != "graph_api" {
		t.Fatalf("pass under a 500: %d %+v", st, ae)
	}
	if g := ae.Error.Graph; g == nil || g.Code != 2 || !g.IsTransient || g.Message != "An unexpected error has occurred. Please retry your request later." {
		t.Fatalf("Meta's error in the answer: %+v", ae.Error.Graph)
	}
	if c := h.lastCall("pass_thread_control"); c.Fault != f.ID || c.Status != 500 || c.Applied {
		t.Fatalf("platform call %+v", c)
	}
	after := h.batonThread()
	if after.Owner != before.Owner || after.Version != before.Version || len(after.History) != len(before.History) {
		t.Fatalf("record moved: before %+v after %+v", before, after)
	}
	if h.platformOwner() != "" {
		t.Fatalf("platform owner %s", h.platformOwner())
	}
	if n := h.countCalls("thread_owner", "support-bot"); n != 0 {
		t.Fatalf("%d thread_owner calls: a 500 says Meta did not apply the call", n)
	}
	errs := h.errorsOf("graph")
	if len(errs) != 1 || errs[0].App != "support-bot" || errs[0].PSID != psid || !strings.Contains(errs[0].Message, "code 2") {
		t.Fatalf("graph errors %+v", h.recentErrors())
	}

	st, tv, ae := h.control(env["SUPPORT_API"], "pass", map[string]string{"to": "billing-bot"})
	if st != http.StatusOK || tv.Owner != "billing-bot" {
		t.Fatalf("second pass: %d %+v %+v", st, tv, ae)
	}
	if h.platformOwner() != billingID {
		t.Fatalf("platform owner %s", h.platformOwner())
	}
}

// A pass Meta applied but whose answer was lost: the caller sees a
// failure, and Baton's record follows thread_owner.
func TestFaultUncertainPassIsReconciled(t *testing.T) {
	h := newHarness(t, withGraphTimeout("300ms"))
	h.say("hi")
	h.support.next()
	// To the Page Inbox, which Baton does not host: no webhook tells Baton
	// of the pass, only thread_owner does.
	f := h.fault(messengertest.Fault{Edge: "pass_thread_control", Mode: messengertest.FaultApplyThenTimeout, Delay: 5 * time.Second, Count: 1})
	st, _, ae := h.control(env["SUPPORT_API"], "pass", map[string]string{"to": "page-inbox"})
	if st != http.StatusServiceUnavailable || ae.Error.Code != "graph_unavailable" {
		t.Fatalf("the pass whose answer was lost: %d %+v", st, ae)
	}
	if c := h.lastCall("pass_thread_control"); c.Fault != f.ID || !c.Applied {
		t.Fatalf("platform call %+v", c)
	}
	if h.platformOwner() != inboxID {
		t.Fatalf("platform owner %q", h.platformOwner())
	}
	tv := h.batonThread()
	if tv.Owner != "page-inbox" || tv.OwnerAppID != inboxID {
		t.Fatalf("record %+v, platform %s", tv, h.platformOwner())
	}
	if e := lastEntry(tv); e.Cause != "reconcile" || e.By != "meta" || e.To != "page-inbox" || e.From != "" {
		t.Fatalf("history %+v", tv.History)
	}
	if len(h.errorsOf("graph")) != 1 {
		t.Fatalf("recent errors %+v", h.recentErrors())
	}
}

// A take whose connection Meta dropped: Meta did not apply it, and the
// record follows what thread_owner says, here an owner Baton had missed.
func TestFaultDroppedTakeIsReconciled(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	// Behind Baton's back, the default app passes to the inbox.
	g, _ := messenger.NewClient(messenger.ClientOptions{BaseURL: h.platURL})
	if err := g.PassThreadControl(context.Background(), messenger.Credentials{AccessToken: "PT_SUPPORT"}, psid, inboxID, ""); err != nil {
		t.Fatal(err)
	}
	if tv := h.batonThread(); tv.Owner != "" {
		t.Fatalf("baton knew already: %+v", tv)
	}
	f := h.fault(messengertest.Fault{Edge: "take_thread_control", Mode: messengertest.FaultDrop, Count: 1})
	if st, _, _ := h.control(env["SUPPORT_API"], "take", nil); st/100 == 2 {
		t.Fatalf("a dropped take succeeded: %d", st)
	}
	if c := h.lastCall("take_thread_control"); c.Fault != f.ID || c.Applied {
		t.Fatalf("platform call %+v", c)
	}
	if h.platformOwner() != inboxID {
		t.Fatalf("platform owner %q", h.platformOwner())
	}
	tv := h.batonThread()
	if tv.Owner != "page-inbox" {
		t.Fatalf("record %+v, platform %s", tv, h.platformOwner())
	}
	if e := lastEntry(tv); e.Cause != "reconcile" || e.To != "page-inbox" {
		t.Fatalf("history %+v", tv.History)
	}
	// Baton now knows: the bot's take goes through.
	if st, tv, ae := h.control(env["SUPPORT_API"], "take", nil); st != http.StatusOK || tv.Owner != "support-bot" {
		t.Fatalf("take: %d %+v %+v", st, tv, ae)
	}
}

// Meta says the record is stale, and thread_owner fails too: the failure
// is shown, nothing is guessed, and Baton keeps answering.
func TestFaultReconcileFails(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	before := h.batonThread()
	h.fault(messengertest.Fault{Edge: "pass_thread_control", Status: 400, Body: json.RawMessage(notOwnerBody), Count: 1})
	h.fault(messengertest.Fault{Edge: "thread_owner", Status: 500})

	st, _, ae := h.control(env["SUPPORT_API"], "pass", map[string]string{"to": "billing-bot"})
	if st != http.StatusBadGateway || ae.Error.Graph == nil || ae.Error.Graph.Code != 10 || ae.Error.Graph.Subcode != 2018300 {
		t.Fatalf("pass refused by Meta: %d %+v", st, ae)
	}
	if n := len(h.errorsOf("graph")) + len(h.errorsOf("reconcile")); n == 0 {
		t.Fatalf("recent errors %+v", h.recentErrors())
	}
	var owners int
	for _, c := range h.platform.Calls() {
		if c.Edge == "thread_owner" && c.Fault != "" {
			owners++
		}
	}
	if owners == 0 {
		t.Fatal("no thread_owner asked")
	}
	if tv := h.batonThread(); tv.Owner != before.Owner || tv.Version != before.Version {
		t.Fatalf("record moved without Meta's answer: %+v", tv)
	}
	// Baton still answers, on both listeners.
	if st := h.do("GET", h.baton+"/v1/threads/"+pageID+"/"+psid, env["SUPPORT_API"], nil, nil); st != http.StatusOK {
		t.Fatalf("bot API: %d", st)
	}
	if st := h.do("GET", h.baton+"/healthz", "", nil, nil); st != http.StatusOK {
		t.Fatalf("healthz: %d", st)
	}
	h.say("still there?")
	h.support.next()
	h.platform.ClearFaults()
	if st, tv, ae := h.control(env["SUPPORT_API"], "pass", map[string]string{"to": "billing-bot"}); st != http.StatusOK || tv.Owner != "billing-bot" {
		t.Fatalf("pass after the faults: %d %+v %+v", st, tv, ae)
	}
}

// uncertainPassUnreconciled makes a pass to the Page Inbox that Meta
// applies without answering, while thread_owner fails: Baton cannot know
// who owns the thread.
func (h *harness) uncertainPassUnreconciled() {
	h.t.Helper()
	h.fault(messengertest.Fault{Edge: "pass_thread_control", Mode: messengertest.FaultApplyThenTimeout, Delay: 5 * time.Second, Count: 1})
	h.fault(messengertest.Fault{Edge: "thread_owner", Status: 500})
	if st, _, _ := h.control(env["SUPPORT_API"], "pass", map[string]string{"to": "page-inbox"}); st/100 == 2 {
		h.t.Fatalf("the pass whose answer was lost succeeded: %d", st)
	}
	if h.platformOwner() != inboxID {
		h.t.Fatalf("platform owner %q", h.platformOwner())
	}
	if tv := h.batonThread(); tv.Owner != "" {
		h.t.Fatalf("record %+v before any answer from thread_owner", tv)
	}
}

// When the reconcile after an uncertain pass fails, the doubt is not
// forgotten: it is retried on Baton's clock until Meta answers.
func TestFaultUncertainPassReconciledInTheBackground(t *testing.T) {
	h := newHarness(t, withGraphTimeout("300ms"))
	h.say("hi")
	h.support.next()
	h.uncertainPassUnreconciled()
	if len(h.errorsOf("graph")) != 1 {
		t.Fatalf("recent errors %+v", h.recentErrors())
	}
	h.platform.ClearFaults()
	h.clock.Advance(2 * time.Second) // the first retry's backoff
	h.eventually("the record following Meta", func() bool { return h.batonThread().Owner == "page-inbox" })
	if e := lastEntry(h.batonThread()); e.Cause != "reconcile" || e.To != "page-inbox" || !strings.Contains(e.Metadata, "did not answer a pass") {
		t.Fatalf("history %+v", h.batonThread().History)
	}
}

// An intent still open at a stop is reconciled at the next start.
func TestFaultIntentRecoveredAtStart(t *testing.T) {
	h := newHarness(t, withGraphTimeout("300ms"))
	h.say("hi")
	h.support.next()
	h.uncertainPassUnreconciled()
	h.stop() // before the clock reaches the background retry
	h.platform.ClearFaults()
	h.startBaton()
	h.eventually("the reconcile at start", func() bool { return h.batonThread().Owner == "page-inbox" })
	if e := lastEntry(h.batonThread()); e.Cause != "reconcile" || e.To != "page-inbox" || !strings.Contains(e.Metadata, "a pass call was cut short by a restart") {
		t.Fatalf("history %+v", h.batonThread().History)
	}
}

// An escalation whose pass hits Meta's 500 is retried after the backoff
// and then hands the thread over, saying its message once.
func TestFaultRuleJobRetriedAfterGraphFailure(t *testing.T) {
	h := newHarness(t, withRules(`
escalate:
  - name: ask-for-human
    words: [human]
    to: billing-bot
    message: "Connecting you with billing."`))
	h.say("hello")
	h.support.next()
	h.fault(messengertest.Fault{Edge: "pass_thread_control", Status: 500, Count: 1})
	h.say("a human please")
	h.support.next()
	h.eventually("the escalation put back", func() bool { j, ok := h.pending("escalate"); return ok && j.Attempts == 1 })
	if h.platformOwner() != "" {
		t.Fatalf("platform owner %s after the failed pass", h.platformOwner())
	}
	if len(h.errorsOf("rule")) != 1 || len(h.errorsOf("graph")) != 1 {
		t.Fatalf("recent errors %+v", h.recentErrors())
	}
	h.clock.Advance(time.Second) // past the rule's backoff (delivery.backoff 20ms)
	h.eventually("the escalation's pass", func() bool { return h.platformOwner() == billingID })
	h.eventually("no pending job", func() bool {
		tv := h.batonThread()
		return tv.Owner == "billing-bot" && len(tv.Pending) == 0
	})
	if e, ok := lastBy(h.batonThread(), "rule:escalate"); !ok || e.To != "billing-bot" || e.Cause != "rule" {
		t.Fatalf("history %+v", h.batonThread().History)
	}
	if out := h.toPerson(); len(out) != 1 || out[0] != "Connecting you with billing." {
		t.Fatalf("the person got %q", out)
	}
	h.eventually("the fired metric", func() bool {
		return h.metric(`baton_rule_firings_total{result="fired",rule="escalate"}`) == 1
	})
}

// A bot's Retry-After holds its delivery for that long on Baton's clock.
func TestFaultBotRetryAfter(t *testing.T) {
	// Retry-After is honoured up to delivery.max_backoff.
	h := newHarness(t, func(yaml *string) { *yaml = strings.Replace(*yaml, "max_backoff: 200ms", "max_backoff: 10m", 1) })
	var n atomic.Int32
	h.support.setRespondWithHeader(func(adapters.Delivery) (int, http.Header, string) {
		if n.Add(1) == 1 {
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"120"}}, "busy"
		}
		return http.StatusOK, nil, ""
	})
	h.say("hello")
	failedAt := h.clock.Now()
	pending := func() []api.DeliveryView {
		var out struct{ Deliveries []api.DeliveryView }
		if st := h.do("GET", h.admin+"/admin/deliveries?status=pending", adminToken, nil, &out); st != http.StatusOK {
			t.Fatalf("pending deliveries: %d", st)
		}
		return out.Deliveries
	}
	h.eventually("the retry scheduled", func() bool { p := pending(); return len(p) == 1 && p[0].Attempts == 1 })
	d := pending()[0]
	if d.NextAttempt == nil || !d.NextAttempt.Equal(failedAt.Add(120*time.Second)) || d.App != "support-bot" || !strings.Contains(d.LastError, "503") {
		t.Fatalf("pending %+v (next attempt %v), want the next attempt at %s", d, d.NextAttempt, failedAt.Add(120*time.Second))
	}
	h.clock.Advance(119 * time.Second)
	h.settle()
	select {
	case got := <-h.support.got:
		t.Fatalf("delivered before Retry-After: %s", got.Kind)
	default:
	}
	if p := pending(); len(p) != 1 || p[0].Attempts != 1 {
		t.Fatalf("pending %+v", p)
	}
	h.clock.Advance(time.Second)
	got := h.support.next()
	if text(got) != "hello" || got.Attempt != 2 {
		t.Fatalf("delivery %+v", got)
	}
	h.eventually("the outbox empty", func() bool { return len(pending()) == 0 })
}

// A pass still waiting for Meta when Baton stops leaves its intent, and
// the next start reconciles the thread.
func TestFaultIntentOfAHeldPassRecoveredAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out Baton's shutdown of a request in flight (about 10 s)")
	}
	// The Graph timeout outlasts the shutdown, so the stop comes while the
	// pass is still waiting for Meta's answer.
	h := newHarness(t, withGraphTimeout("30s"))
	h.say("hi")
	h.support.next()
	h.fault(messengertest.Fault{Edge: "pass_thread_control", Mode: messengertest.FaultApplyThenTimeout, Delay: 11 * time.Second, Count: 1})
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, _ := json.Marshal(map[string]string{"to": "page-inbox"})
		req, _ := http.NewRequest("POST", h.baton+"/v1/threads/"+pageID+"/"+psid+"/pass", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+env["SUPPORT_API"])
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	// Applied by the platform, then held: the intent is stored by now.
	h.eventually("the held pass", func() bool { return h.platformOwner() == inboxID })
	h.stop()
	<-done
	h.platform.ClearFaults()
	h.startBaton()
	h.eventually("the reconcile at start", func() bool { return h.batonThread().Owner == "page-inbox" })
	if e := lastEntry(h.batonThread()); e.Cause != "reconcile" || !strings.Contains(e.Metadata, "cut short by a restart") || e.To != "page-inbox" {
		t.Fatalf("history %+v", h.batonThread().History)
	}
}

// A thread_owner answer that left Meta before a pass must not undo the
// pass that Baton recorded after it.
func TestFaultStaleThreadOwnerAnswerDoesNotUndoAPass(t *testing.T) {
	h := newHarness(t, withGraphTimeout("2s")) // longer than the slow answer below
	h.say("hi")
	h.support.next()
	// A pass with no answer, not applied, whose reconcile fails: the
	// reconcile is retried in the background.
	h.fault(messengertest.Fault{Edge: "pass_thread_control", Mode: messengertest.FaultTimeout, Delay: 5 * time.Second, Count: 1})
	h.fault(messengertest.Fault{Edge: "thread_owner", Status: 500})
	if st, _, _ := h.control(env["SUPPORT_API"], "pass", map[string]string{"to": "billing-bot"}); st/100 == 2 {
		t.Fatalf("a pass without answer succeeded: %d", st)
	}
	h.platform.ClearFaults()
	// The retry's thread_owner is answered slowly: idle, the truth when
	// Meta read it.
	slow := h.fault(messengertest.Fault{Edge: "thread_owner", Status: 200, Body: json.RawMessage(`{"data":[]}`), Delay: time.Second, Count: 1})
	h.clock.Advance(2 * time.Second)
	h.eventually("the background reconcile asking", func() bool {
		for _, c := range h.platform.Calls() {
			if c.Fault == slow.ID {
				return true
			}
		}
		return false
	})
	// Meanwhile the bot passes, and Meta applies it.
	if st, tv, ae := h.control(env["SUPPORT_API"], "pass", map[string]string{"to": "billing-bot"}); st != http.StatusOK || tv.Owner != "billing-bot" {
		t.Fatalf("pass: %d %+v %+v", st, tv, ae)
	}
	if h.platformOwner() != billingID {
		t.Fatalf("platform owner %q", h.platformOwner())
	}
	// Nothing announces the end of a reconcile that changes nothing: give
	// the slow answer time to land.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && h.batonThread().Owner == "billing-bot" {
		time.Sleep(20 * time.Millisecond)
	}
	if tv := h.batonThread(); tv.Owner != "billing-bot" {
		t.Fatalf("record %q (last %+v), Meta has billing-bot", tv.Owner, lastEntry(tv))
	}
}
