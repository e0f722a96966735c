package orchestrator_test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/orchestrator/api"
)

// withRules adds a rules block to the harness's page.
func withRules(block string) harnessOpt {
	return func(yaml *string) {
		var b strings.Builder
		b.WriteString("    rules:\n")
		for _, line := range strings.Split(strings.Trim(block, "\n"), "\n") {
			b.WriteString("      " + line + "\n")
		}
		*yaml += b.String()
	}
}

// metric reads one series from Baton's /metrics (0 when absent).
func (h *harness) metric(series string) float64 {
	h.t.Helper()
	resp, err := http.Get(h.admin + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// lastBy is the newest history entry made by who.
func lastBy(tv api.ThreadView, by string) (api.HistoryView, bool) {
	for i := len(tv.History) - 1; i >= 0; i-- {
		if tv.History[i].By == by {
			return tv.History[i], true
		}
	}
	return api.HistoryView{}, false
}

// toPerson lists the texts the page sent the person, per the platform.
func (h *harness) toPerson() []string {
	st, _ := h.platform.Thread(pageID, psid)
	var out []string
	for _, m := range st.Messages {
		if m.Direction == "out" {
			out = append(out, m.Text)
		}
	}
	return out
}

func (h *harness) pending(rule string) (api.JobView, bool) {
	for _, j := range h.batonThread().Pending {
		if j.Rule == rule {
			return j, true
		}
	}
	return api.JobView{}, false
}

// countCalls counts the platform's successful Graph calls on edge by app.
func (h *harness) countCalls(edge, app string) int {
	n := 0
	for _, c := range h.platform.Calls() {
		if c.Edge == edge && c.App == app && c.Success {
			n++
		}
	}
	return n
}

func TestRuleEscalationByWordAndPayload(t *testing.T) {
	h := newHarness(t, withRules(`
escalate:
  - name: ask-for-human
    words: [human, "real person"]
    payloads: [TALK_TO_BILLING]
    to: billing-bot
    message: "Connecting you with billing."`))
	h.say("hello")
	h.support.next()
	h.say("I want a REAL person, now")
	h.support.next()
	h.eventually("the escalation's pass", func() bool { return h.platformOwner() == billingID })
	// The billing bot hears why.
	for {
		d := h.billing.next()
		if d.Kind == "pass_thread_control" {
			if !strings.Contains(string(d.Event), "escalation ask-for-human: word real person") {
				t.Fatalf("pass metadata: %s", d.Event)
			}
			break
		}
	}
	h.eventually("Baton's record", func() bool { return h.batonThread().Owner == "billing-bot" })
	// The person heard it from the bot side, once, before the pass.
	if out := h.toPerson(); len(out) != 1 || out[0] != "Connecting you with billing." {
		t.Fatalf("the person got %q", out)
	}
	e, ok := lastBy(h.batonThread(), "rule:escalate")
	if !ok || e.Cause != "rule" || e.To != "billing-bot" || e.From != "" {
		t.Fatalf("history: %+v", h.batonThread().History)
	}
	h.eventually("the fired metric", func() bool {
		return h.metric(`baton_rule_firings_total{result="fired",rule="escalate"}`) == 1
	})
	// While billing owns the thread, the word does nothing more.
	h.say("human?")
	h.billing.next()
	h.settle()
	if n := h.countCalls("pass_thread_control", "support-bot"); n != 1 {
		t.Fatalf("%d passes", n)
	}

	// A postback payload escalates too, once the thread is back.
	h.do("POST", h.admin+"/admin/threads/"+pageID+"/"+psid+"/take", adminToken, map[string]string{"app": "support-bot"}, nil)
	h.eventually("take back", func() bool { return h.platformOwner() == supportID })
	if st := h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/users/"+psid+"/postbacks?wait=true", "", map[string]string{"title": "Billing", "payload": "TALK_TO_BILLING"}, nil); st != 200 {
		t.Fatalf("postback: %d", st)
	}
	h.eventually("the payload's pass", func() bool { return h.platformOwner() == billingID })
	if out := h.toPerson(); len(out) != 2 {
		t.Fatalf("the person got %q", out)
	}
}

func TestRuleHoursHoldEscalationAndSayWhy(t *testing.T) {
	// The harness clock starts on Tuesday 2026-11-24 10:00 UTC, 11:00 in
	// Paris: before opening.
	h := newHarness(t, withRules(`
escalate:
  - words: [human]
    to: billing-bot
hours:
  timezone: Europe/Paris
  open: {mon-fri: "13:00-18:00"}
  closed_message: "We are away until 13:00."`))
	h.say("human please")
	h.support.next()
	h.eventually("the closed message", func() bool {
		out := h.toPerson()
		return len(out) == 1 && out[0] == "We are away until 13:00."
	})
	tv := h.batonThread()
	if e, ok := lastBy(tv, "rule:hours"); !ok || !strings.Contains(e.Metadata, "outside business hours") || e.Cause != "rule" {
		t.Fatalf("history: %+v", tv.History)
	}
	if h.platformOwner() != "" || h.metric(`baton_rule_firings_total{result="held",rule="escalate"}`) != 1 {
		t.Fatal("escalated outside hours")
	}
	h.clock.Advance(2*time.Hour + time.Minute) // 13:01 in Paris
	h.say("human please")
	h.support.next()
	h.eventually("the pass inside hours", func() bool { return h.platformOwner() == billingID })
}

func TestRuleEntryByReferral(t *testing.T) {
	h := newHarness(t, withRules(`
entry:
  - ref: billing-campaign
    to: billing-bot
    metadata: "came from the billing m.me link"
  - source: ADS
    to: page-inbox`))
	if st := h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/users/"+psid+"/referrals?wait=true", "", map[string]string{"ref": "billing-campaign", "source": "SHORTLINK"}, nil); st != 200 {
		t.Fatalf("referral: %d", st)
	}
	h.eventually("the entry pass", func() bool { return h.platformOwner() == billingID })
	h.eventually("Baton's record", func() bool {
		e, ok := lastBy(h.batonThread(), "rule:entry")
		return ok && e.Metadata == "came from the billing m.me link"
	})
	// Another thread, from an ad: to the Page Inbox.
	const other = "7999999999999999"
	if st := h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/users/"+other+"/referrals?wait=true", "", map[string]string{"ref": "x", "source": "ADS", "ad_id": "6045246247433"}, nil); st != 200 {
		t.Fatalf("referral: %d", st)
	}
	h.eventually("the ad's pass", func() bool {
		st, _ := h.platform.Thread(pageID, other)
		return st.OwnerAppID != nil && string(*st.OwnerAppID) == inboxID
	})
}

func TestRuleRequests(t *testing.T) {
	for _, c := range []struct {
		policy  string
		idle    time.Duration // how long the owner was quiet before the request
		granted bool
	}{
		{"approve", 0, true},
		{"refuse", time.Hour, false},
		{"approve_if_idle", time.Minute, false},
		{"approve_if_idle", 10 * time.Minute, true},
		{"ask", time.Hour, false},
	} {
		t.Run(c.policy+"/"+c.idle.String(), func(t *testing.T) {
			block := "requests: {policy: " + c.policy + "}"
			if c.policy == "approve_if_idle" {
				block = "requests: {policy: approve_if_idle, idle: 5m}"
			}
			// Requests exist on legacy pages: a secondary asks the primary.
			h := newHarness(t, legacyPage, withRules(block))
			h.say("hi")
			h.support.next()
			// The owner answers (its echo is its activity), then is quiet.
			if st := h.do("POST", h.baton+"/graph/v21.0/me/messages", env["SUPPORT_API"], map[string]any{
				"recipient": map[string]string{"id": psid}, "messaging_type": "RESPONSE", "message": map[string]string{"text": "Hello!"}}, nil); st != 200 {
				t.Fatalf("send: %d", st)
			}
			h.settle() // the echo is in
			if tv := h.batonThread(); tv.OwnerActiveAt == nil || !tv.OwnerActiveAt.Equal(h.clock.Now()) {
				t.Fatalf("owner activity not recorded: %+v", tv)
			}
			h.clock.Advance(c.idle)
			if st := h.do("POST", h.baton+"/v1/threads/"+pageID+"/"+psid+"/request", env["BILLING_API"], map[string]string{"metadata": "customer asked for a refund"}, nil); st != 200 {
				t.Fatalf("request: %d", st)
			}
			// The owner's bot always hears of the request.
			for d := h.support.next(); d.Kind != "request_thread_control"; d = h.support.next() {
			}
			if c.granted {
				h.eventually("the approval", func() bool { return h.platformOwner() == billingID })
				// Baton records the pass after Meta's answer: wait for it too.
				h.eventually("the approval in the history", func() bool {
					e, ok := lastBy(h.batonThread(), "rule:requests")
					return ok && e.To == "billing-bot" && e.Metadata == "customer asked for a refund"
				})
				return
			}
			h.settle()
			if h.platformOwner() != supportID {
				t.Fatalf("owner %s", h.platformOwner())
			}
			_, refused := lastBy(h.batonThread(), "rule:requests")
			if refused != (c.policy == "refuse") {
				t.Fatalf("refusal in history: %v (%+v)", refused, h.batonThread().History)
			}
		})
	}
}

// The return timer is durable: a restart neither loses nor doubles it,
// activity moves it, and it fires within a second of its time.
func TestRuleReturnAcrossRestarts(t *testing.T) {
	h := newHarness(t, withRules(`
escalate:
  - words: [human]
    to: billing-bot
return:
  after: 10m
  to: primary
  message: "You are back with our assistant."`))
	h.say("human")
	h.support.next()
	h.eventually("escalation", func() bool { return h.platformOwner() == billingID })
	h.eventually("the return timer", func() bool { _, ok := h.pending("return"); return ok })
	j, _ := h.pending("return")
	start := j.At.Add(-10 * time.Minute)

	// Restart with the timer pending; activity at +5m moves it to +15m.
	h.stop()
	h.startBaton()
	h.clock.Advance(5 * time.Minute)
	h.say("still there?")
	h.clock.Advance(5*time.Minute + time.Second) // the old time: the timer moves
	h.eventually("the moved timer", func() bool {
		j, ok := h.pending("return")
		return ok && j.At.Equal(start.Add(15*time.Minute))
	})
	if h.platformOwner() != billingID {
		t.Fatal("returned despite the activity")
	}

	// Down when the timer is due; it fires once at the next start.
	h.stop()
	h.clock.Advance(5 * time.Minute)
	h.startBaton()
	h.eventually("the return", func() bool { return h.platformOwner() == supportID })
	h.eventually("the message", func() bool {
		out := h.toPerson()
		return len(out) > 0 && out[len(out)-1] == "You are back with our assistant."
	})
	h.eventually("the timer cleared", func() bool { _, ok := h.pending("return"); return !ok })
	h.settle()
	if n := h.countCalls("pass_thread_control", "billing-bot"); n != 1 {
		t.Fatalf("billing passed back %d times", n)
	}
	e, ok := lastBy(h.batonThread(), "rule:return")
	if !ok || e.From != "billing-bot" || e.To != "support-bot" || e.Cause != "rule" {
		t.Fatalf("history %+v", h.batonThread().History)
	}
}

// To an external owner (Page Inbox) the primary takes the thread back, and
// with to: idle releases it.
func TestRuleReturnFromPageInboxToIdle(t *testing.T) {
	h := newHarness(t, withRules(`
escalate:
  - words: [human]
    to: page-inbox
return: {after: 30m, to: idle}`))
	h.say("human")
	h.support.next()
	h.eventually("escalation", func() bool { return h.platformOwner() == inboxID })
	// An agent answers at +20m: the echo is activity.
	h.clock.Advance(20 * time.Minute)
	if st := h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/inbox/"+psid+"/messages?wait=true", "", map[string]string{"text": "Hi, Ana here"}, nil); st != 200 {
		t.Fatalf("inbox reply: %d", st)
	}
	h.eventually("the echo's activity", func() bool {
		tv := h.batonThread()
		return tv.ActiveAt != nil && tv.ActiveAt.Equal(h.clock.Now())
	})
	h.clock.Advance(11 * time.Minute)
	h.eventually("the moved timer", func() bool {
		j, ok := h.pending("return")
		return ok && j.At.Equal(h.clock.Now().Add(19*time.Minute))
	})
	h.clock.Advance(19 * time.Minute)
	h.eventually("release to idle", func() bool { return h.platformOwner() == "" && h.batonThread().State == "idle" })
	if h.countCalls("take_thread_control", "support-bot") != 1 || h.countCalls("release_thread_control", "support-bot") != 1 {
		t.Fatalf("calls: %+v", h.platform.Calls())
	}
}

// A bot failing for failover.after loses the thread to the Page Inbox, and
// gets it back when it delivers again.
func TestRuleFailoverAndBack(t *testing.T) {
	h := newHarness(t, withRules(`
failover: {after: 1m, to: page-inbox, back: true, message: "A person will answer you shortly."}`))
	h.support.setRespond(func(adapters.Delivery) (int, string) { return 503, "" })
	h.say("hello?")
	h.eventually("the failover timer", func() bool { _, ok := h.pending("failover"); return ok })
	if h.platformOwner() != "" {
		t.Fatal("moved too early")
	}
	h.clock.Advance(time.Minute + time.Second)
	h.eventually("the failover", func() bool { return h.platformOwner() == inboxID })
	if out := h.toPerson(); len(out) != 1 || out[0] != "A person will answer you shortly." {
		t.Fatalf("to the person: %q", out)
	}
	h.eventually("the failover in the history", func() bool {
		e, ok := lastBy(h.batonThread(), "rule:failover")
		return ok && e.To == "page-inbox" && strings.Contains(e.Metadata, "deliveries to support-bot failing")
	})
	h.eventually("the failback timer", func() bool { _, ok := h.pending("failback"); return ok })

	// The bot comes back: the next retry delivers, and the thread follows.
	h.support.setRespond(nil)
	h.clock.Advance(time.Second)
	h.support.next()
	h.eventually("the failback", func() bool { return h.platformOwner() == supportID })
	h.eventually("the failback in the history", func() bool {
		e, ok := lastBy(h.batonThread(), "rule:failback")
		return ok && e.To == "support-bot"
	})
	// The job counts its firing once the pass is recorded.
	h.eventually("the failback metric", func() bool {
		return h.metric(`baton_rule_firings_total{result="fired",rule="failback"}`) == 1
	})
}
