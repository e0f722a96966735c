package handover

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/store"
)

const (
	textHuman   = `{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1718000000000,"message":{"mid":"m_1","text":"I want a HUMAN now"}}`
	textHello   = `{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1718000000000,"message":{"mid":"m_2","text":"hello"}}`
	quickReply  = `{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1718000000000,"message":{"mid":"m_3","text":"Billing","quick_reply":{"payload":"TALK_TO_BILLING"}}}`
	echoHuman   = `{"sender":{"id":"100200300400500"},"recipient":{"id":"7123456789012345"},"timestamp":1718000000000,"message":{"mid":"m_4","is_echo":true,"app_id":512345678901234,"text":"a human will come"}}`
	postbackNil = `{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1718000000000,"postback":{"title":"Billing","mid":"m_5"}}`
	postbackPay = `{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1718000000000,"postback":{"title":"Billing","payload":"TALK_TO_BILLING","mid":"m_6"}}`
	messageAd   = `{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1718000000000,"message":{"mid":"m_7","text":"human please","referral":{"ref":"x","source":"ADS","type":"OPEN_THREAD","ad_id":"6045246247433"}}}`
	requestFrom = `{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1718000000000,"request_thread_control":{"requested_owner_app_id":"%s","metadata":"agent wants this thread"}}`
)

const (
	escalateHuman = `
escalate:
  - name: human
    words: [human]
    payloads: [TALK_TO_BILLING]
    to: billing-bot
    message: "Connecting you with billing."`
	hoursClosed = `
  - name: anytime
    words: [urgent]
    to: page-inbox
    any_time: true
hours:
  timezone: UTC
  open: {mon-fri: "13:00-18:00"}
  closed_message: "We are away until 13:00."`
)

// TestArm checks what Arm writes, inside the ingress transaction, for
// the events a person or an app sends.
func TestArm(t *testing.T) {
	type wantJob struct {
		rule, target, app, metadata, reason, message string
	}
	for _, c := range []struct {
		name     string
		rules    string
		owner    string        // thread owner's app id
		quiet    time.Duration // the owner's silence before the event
		at       time.Duration // after start (Tuesday 10:00 UTC)
		rcv      string        // receiving app; support-bot when empty
		event    string        // JSON, or a fixture file name
		firing   Firing
		problem  string // in Firing.Problem's message
		jobs     []wantJob
		history  string // event of the one history entry expected
		metadata string // in that entry's metadata
	}{
		{name: "escalation word while idle", rules: escalateHuman, event: textHuman,
			firing: Firing{Rule: RuleEscalate, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEscalate, target: "billing-bot", metadata: "escalation human: word human", reason: "human: word human", message: "Connecting you with billing."}}},
		{name: "escalation word while the bot holds", rules: escalateHuman, owner: supportID, event: textHuman,
			firing: Firing{Rule: RuleEscalate, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEscalate, target: "billing-bot", metadata: "escalation human: word human", message: "Connecting you with billing."}}},
		{name: "escalation by quick reply", rules: escalateHuman, owner: supportID, event: quickReply,
			firing: Firing{Rule: RuleEscalate, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEscalate, target: "billing-bot", metadata: "escalation human: payload TALK_TO_BILLING"}}},
		{name: "escalation by postback", rules: escalateHuman, event: postbackPay,
			firing: Firing{Rule: RuleEscalate, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEscalate, target: "billing-bot"}}},
		{name: "escalation word while a human holds", rules: escalateHuman, owner: billingID, rcv: "billing-bot", event: textHuman},
		{name: "escalation word while the inbox holds", rules: escalateHuman, owner: inboxID, event: textHuman},
		{name: "no escalation word", rules: escalateHuman, event: textHello},
		{name: "the page's own echo", rules: escalateHuman, event: echoHuman},
		{name: "a postback's standby copy without payload", rules: escalateHuman, event: postbackNil},
		{name: "escalation outside business hours", rules: escalateHuman + hoursClosed, owner: supportID, event: textHuman,
			firing:  Firing{Rule: RuleEscalate, Result: heldResult},
			jobs:    []wantJob{{rule: RuleHours, reason: "escalation human (word human) to billing-bot held: outside business hours"}},
			history: "rule_hours", metadata: "escalation human (word human) to billing-bot held: outside business hours"},
		{name: "escalation outside business hours, no closed message", rules: escalateHuman + strings.Replace(hoursClosed, `  closed_message: "We are away until 13:00."`, "", 1), event: textHuman,
			firing:  Firing{Rule: RuleEscalate, Result: heldResult},
			history: "rule_hours", metadata: "outside business hours"},
		{name: "escalation any time outside business hours", rules: escalateHuman + hoursClosed,
			event:  strings.Replace(textHuman, "I want a HUMAN now", "urgent!", 1),
			firing: Firing{Rule: RuleEscalate, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEscalate, target: "page-inbox", metadata: "escalation anytime: word urgent"}}},
		{name: "escalation inside business hours", rules: escalateHuman + hoursClosed, at: 4 * time.Hour, event: textHuman,
			firing: Firing{Rule: RuleEscalate, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEscalate, target: "billing-bot"}}},
		{name: "entry by m.me link", rules: "entry:\n  - {ref: support=billing, to: billing-bot}", event: "referral_mme_link.json",
			firing: Firing{Rule: RuleEntry, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEntry, target: "billing-bot", metadata: "entry: referral SHORTLINK support=billing", reason: "referral SHORTLINK support=billing"}}},
		{name: "entry by ad id", rules: "entry:\n  - {source: ADS, ad_id: \"120210000000000001\", to: page-inbox, metadata: from the spring sale}", event: "referral_ad.json",
			firing: Firing{Rule: RuleEntry, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEntry, target: "page-inbox", metadata: "from the spring sale"}}},
		{name: "entry by get started postback", rules: "entry:\n  - {ref: campaign-spring_2026, to: billing-bot}", event: "postback_get_started_with_referral.json",
			firing: Firing{Rule: RuleEntry, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEntry, target: "billing-bot"}}},
		{name: "entry before escalation", rules: escalateHuman + "\nentry:\n  - {source: ADS, to: page-inbox}", event: messageAd,
			firing: Firing{Rule: RuleEntry, Result: armedResult},
			jobs:   []wantJob{{rule: RuleEntry, target: "page-inbox"}}},
		{name: "entry matching nothing", rules: "entry:\n  - {ref: other, to: billing-bot}", event: "referral_mme_link.json"},
		{name: "entry to the app that already owns", rules: "entry:\n  - {ref: support=billing, to: support-bot}", owner: supportID, event: "referral_mme_link.json"},
		{name: "request, policy ask", rules: "requests: {policy: ask}", owner: supportID, event: "messaging_handovers_request_thread_control.json"},
		{name: "request, policy approve", rules: "requests: {policy: approve}", owner: supportID, event: "messaging_handovers_request_thread_control.json",
			firing: Firing{Rule: RuleRequests, Result: armedResult},
			jobs:   []wantJob{{rule: RuleRequests, app: "support-bot", target: "billing-bot", metadata: "agent wants this thread", reason: "request from billing-bot approved (approve)"}}},
		{name: "request, approve_if_idle, owner active", rules: "requests: {policy: approve_if_idle, idle: 5m}", owner: supportID, quiet: time.Minute,
			event: "messaging_handovers_request_thread_control.json"},
		{name: "request, approve_if_idle, owner quiet", rules: "requests: {policy: approve_if_idle, idle: 5m}", owner: supportID, quiet: 10 * time.Minute,
			event:  "messaging_handovers_request_thread_control.json",
			firing: Firing{Rule: RuleRequests, Result: armedResult},
			jobs:   []wantJob{{rule: RuleRequests, app: "support-bot", target: "billing-bot", reason: "request from billing-bot approved (approve_if_idle)"}}},
		{name: "request, policy refuse", rules: "requests: {policy: refuse}", owner: supportID, event: "messaging_handovers_request_thread_control.json",
			firing:  Firing{Rule: RuleRequests, Result: refusedResult},
			history: "rule_requests", metadata: "request from billing-bot refused by policy"},
		{name: "request to an app that does not own the thread", rules: "requests: {policy: approve}", owner: billingID, event: "messaging_handovers_request_thread_control.json"},
		{name: "request from an app not on the page", rules: "requests: {policy: approve}", owner: supportID,
			event:   strings.Replace(requestFrom, "%s", "999999999999999", 1),
			problem: "request_thread_control from app 999999999999999, which is not on the page in the config"},
		{name: "a page without rules", event: textHuman},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.rules)
			var ev *messenger.Event
			if strings.HasSuffix(c.event, ".json") {
				ev = mustFixtureEvent(t, c.event)
			} else {
				ev = mustEvent(t, c.event)
			}
			rcv := f.top.App("support-bot")
			if c.rcv != "" {
				rcv = f.top.App(c.rcv)
			}
			now := start.Add(c.at)
			f.setOwner(c.owner)
			f.setActiveAt(now.Add(-c.quiet))
			f.mu.Lock()
			th := f.threadLocked(thread)
			f.mu.Unlock()
			var got Firing
			if err := f.db.Update(context.Background(), func(tx store.Tx) error {
				var err error
				got, err = f.e.Arm(tx, f.page, rcv, ev, &th, now)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if got.Rule != c.firing.Rule || got.Result != c.firing.Result {
				t.Fatalf("firing %+v, want %+v", got, c.firing)
			}
			switch {
			case c.problem == "" && got.Problem != nil:
				t.Fatalf("problem %+v", got.Problem)
			case c.problem != "" && (got.Problem == nil || !strings.Contains(got.Problem.Message, c.problem) || got.Problem.Kind != "rule" || got.Problem.PSID != psid):
				t.Fatalf("problem %+v, want %q", got.Problem, c.problem)
			}
			jobs := map[string]store.Job{}
			for _, rule := range Rules {
				if j, ok := f.job(rule); ok {
					jobs[rule] = j
				}
			}
			if len(jobs) != len(c.jobs) {
				t.Fatalf("jobs %+v, want %+v", jobs, c.jobs)
			}
			for _, w := range c.jobs {
				j := jobs[w.rule]
				if !j.At.Equal(now) || !j.Created.Equal(now) || j.Target != w.target || j.App != w.app || j.Attempts != 0 ||
					(w.metadata != "" && j.Metadata != w.metadata) || (w.reason != "" && j.Reason != w.reason) || (w.message != "" && j.Message != w.message) {
					t.Fatalf("job %+v, want %+v at %s", j, w, now)
				}
			}
			hs := f.history()
			if c.history == "" {
				if len(hs) != 0 {
					t.Fatalf("history %+v", hs)
				}
				return
			}
			if len(hs) != 1 {
				t.Fatalf("history %+v", hs)
			}
			h := hs[0]
			if h.Event != c.history || !strings.Contains(h.Metadata, c.metadata) || h.Cause != store.CauseRule || h.From != c.owner || h.To != c.owner || !h.At.Equal(now) {
				t.Fatalf("history %+v, want %s with %q", h, c.history, c.metadata)
			}
		})
	}
}

func TestFiredCountsOnceCommitted(t *testing.T) {
	f := newFixture(t, escalateHuman)
	f.e.Fired([]Firing{{Rule: RuleEscalate, Result: armedResult}, {Rule: RuleEscalate, Result: armedResult}, {Rule: RuleRequests, Result: refusedResult}})
	if n := testutil.ToFloat64(f.m.Rules.WithLabelValues(RuleEscalate, armedResult)); n != 2 {
		t.Fatalf("escalate armed %v", n)
	}
	if n := testutil.ToFloat64(f.m.Rules.WithLabelValues(RuleRequests, refusedResult)); n != 1 {
		t.Fatalf("requests refused %v", n)
	}
}

// Metadata longer than Meta's limit is cut on a rune boundary.
func TestTruncateKeepsRunes(t *testing.T) {
	s := strings.Repeat("a", 999) + "é" // é is two bytes: 999 and 1000
	if got := truncate(s, 1000); got != strings.Repeat("a", 999) {
		t.Fatalf("cut inside a rune: %q", got[990:])
	}
	if got := truncate("short", 1000); got != "short" {
		t.Fatal(got)
	}
}

// AfterTransition keeps the return timer in step with the owner.
func TestAfterTransitionArmsAndDropsTheReturnTimer(t *testing.T) {
	f := newFixture(t, "return: {after: 10m, to: primary}")
	step := func(owner string, at time.Time) {
		t.Helper()
		f.setOwner(owner)
		f.mu.Lock()
		th := f.threadLocked(thread)
		f.mu.Unlock()
		if err := f.db.Update(context.Background(), func(tx store.Tx) error { return AfterTransition(tx, f.page, &th, at) }); err != nil {
			t.Fatal(err)
		}
	}
	step(billingID, start)
	if j, ok := f.job(RuleReturn); !ok || !j.At.Equal(start.Add(10*time.Minute)) || !j.Created.Equal(start) {
		t.Fatalf("return job %+v %v", j, ok)
	}
	step(inboxID, start.Add(time.Minute)) // secondary to secondary: the timer restarts
	if j, ok := f.job(RuleReturn); !ok || !j.At.Equal(start.Add(11*time.Minute)) {
		t.Fatalf("return job %+v %v", j, ok)
	}
	step(supportID, start.Add(2*time.Minute))
	if _, ok := f.job(RuleReturn); ok {
		t.Fatal("the primary got the thread; the timer stayed")
	}
	step(billingID, start.Add(3*time.Minute))
	step("", start.Add(4*time.Minute))
	if _, ok := f.job(RuleReturn); ok {
		t.Fatal("the thread went idle; the timer stayed")
	}

	// No return rule: nothing to keep.
	g := newFixture(t, escalateHuman)
	g.setOwner(billingID)
	g.mu.Lock()
	th := g.threadLocked(thread)
	g.mu.Unlock()
	if err := g.db.Update(context.Background(), func(tx store.Tx) error { return AfterTransition(tx, g.page, &th, start) }); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.job(RuleReturn); ok {
		t.Fatal("a return job without a return rule")
	}
}
