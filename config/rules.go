package config

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/rules"
)

// Rules are a page's handover rules: the trip from bot to human and back,
// declared instead of coded. Every rule is optional.
type Rules struct {
	Escalate []Escalation `yaml:"escalate"`
	Return   *Return      `yaml:"return"`
	Requests *Requests    `yaml:"requests"`
	Entry    []Entry      `yaml:"entry"`
	Failover *Failover    `yaml:"failover"`
	Hours    *Hours       `yaml:"hours"`
}

// Escalation hands a thread to an app when a person's message has one of
// the words or matches one of the patterns, or a quick reply or postback
// carries one of the payloads.
type Escalation struct {
	Name     string   `yaml:"name"`
	Words    []string `yaml:"words"`
	Patterns []string `yaml:"patterns"`
	Payloads []string `yaml:"payloads"`
	To       string   `yaml:"to"`
	// Metadata goes with the pass (Meta's 1,000-character limit); the
	// default says which rule fired and what matched.
	Metadata string `yaml:"metadata"`
	// AnyTime escalates outside business hours too.
	AnyTime bool `yaml:"any_time"`
	// Message, if set, is sent to the person by the app that holds the
	// thread, just before the pass ("Connecting you with a person").
	Message string `yaml:"message"`

	Match *rules.Matcher `yaml:"-"`
}

// Return gives control back when a secondary app owns a thread and
// nothing happened on it (no message from the person, no reply from the
// owner) for After.
type Return struct {
	After time.Duration `yaml:"after"`
	// To is "primary" (pass to the default app) or "idle" (release).
	To string `yaml:"to"`
	// Message, if set, is sent to the person by the primary app.
	Message string `yaml:"message"`
}

// Requests says what Baton does when a hosted app that owns a thread
// receives request_thread_control from another app.
type Requests struct {
	// Policy is ask (deliver to the owner's bot, which decides: the
	// default), approve (pass to the requester at once), approve_if_idle
	// (approve when the owner sent nothing for Idle, else ask) or refuse.
	Policy string        `yaml:"policy"`
	Idle   time.Duration `yaml:"idle"`
}

// Entry starts a thread with an app: an m.me link's ref, or a referral
// from an ad (source ADS, optionally one ad id).
type Entry struct {
	Ref      string `yaml:"ref"`
	Source   string `yaml:"source"`
	AdID     string `yaml:"ad_id"`
	To       string `yaml:"to"`
	Metadata string `yaml:"metadata"`
}

// Failover moves a thread to another app (a human inbox) when its owner's
// bot has failed deliveries for After, and back when it recovers if Back.
type Failover struct {
	After   time.Duration `yaml:"after"`
	To      string        `yaml:"to"`
	Back    bool          `yaml:"back"`
	Message string        `yaml:"message"`
}

// Hours are business hours: escalations happen only inside them.
type Hours struct {
	Timezone string            `yaml:"timezone"`
	Open     map[string]string `yaml:"open"`
	// ClosedMessage, if set, is sent to the person by the bot that keeps
	// the thread when an escalation is held outside the hours.
	ClosedMessage string `yaml:"closed_message"`

	Week *rules.Week `yaml:"-"`
}

// Request policies.
const (
	RequestsAsk           = "ask"
	RequestsApprove       = "approve"
	RequestsApproveIfIdle = "approve_if_idle"
	RequestsRefuse        = "refuse"
)

// Return targets.
const (
	ReturnPrimary = "primary"
	ReturnIdle    = "idle"
)

// maxMetadata is Meta's limit on thread-control metadata.
const maxMetadata = 1000

func (v *validator) rules(path string, p *Page, on map[string]bool) {
	r := &p.Rules
	target := func(field, name string) {
		switch {
		case name == "":
			v.bad(field, "required: the app that gets the thread")
		case !on[name]:
			v.bad(field, "%q is not on this page (primary or secondary)", name)
		}
	}
	metadata := func(field, md string) {
		if len(md) > maxMetadata {
			v.bad(field, "%d characters: Meta's limit is %d", len(md), maxMetadata)
		}
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			v.bad(field, "required: a positive duration such as 30m")
		}
	}
	names := map[string]bool{}
	for i := range r.Escalate {
		e, f := &r.Escalate[i], fmt.Sprintf("%s.escalate[%d]", path, i)
		if e.Name == "" {
			e.Name = fmt.Sprintf("escalate-%d", i+1)
		}
		if names[e.Name] {
			v.bad(f+".name", "%q names another escalation rule", e.Name)
		}
		names[e.Name] = true
		if len(e.Words)+len(e.Patterns)+len(e.Payloads) == 0 {
			v.bad(f, "needs words, patterns or payloads")
		}
		m, err := rules.NewMatcher(e.Words, e.Patterns, e.Payloads)
		if err != nil {
			v.bad(f, "%v", err)
		}
		e.Match = m
		target(f+".to", e.To)
		if e.To != "" && e.To == p.Primary {
			v.bad(f+".to", "%q is the primary: escalation hands the thread from it to another app", e.To)
		}
		metadata(f+".metadata", e.Metadata)
	}
	if rt := r.Return; rt != nil {
		f := path + ".return"
		positive(f+".after", rt.After)
		if rt.To == "" {
			rt.To = ReturnPrimary
		}
		switch rt.To {
		case ReturnPrimary, ReturnIdle:
		default:
			v.bad(f+".to", "%q is not primary or idle", rt.To)
		}
		if p.Primary == "" {
			v.bad(f, "needs a primary app on the page to give control back to")
		}
	}
	if rq := r.Requests; rq != nil {
		f := path + ".requests"
		if rq.Policy == "" {
			rq.Policy = RequestsAsk
		}
		switch rq.Policy {
		case RequestsAsk, RequestsApprove, RequestsRefuse:
			if rq.Idle != 0 {
				v.bad(f+".idle", "only policy approve_if_idle reads idle")
			}
		case RequestsApproveIfIdle:
			positive(f+".idle", rq.Idle)
		default:
			v.bad(f+".policy", "%q is not ask, approve, approve_if_idle or refuse", rq.Policy)
		}
	}
	for i := range r.Entry {
		e, f := &r.Entry[i], fmt.Sprintf("%s.entry[%d]", path, i)
		if e.Ref == "" && e.Source == "" && e.AdID == "" {
			v.bad(f, "needs ref, source or ad_id")
		}
		switch e.Source {
		case "", "ADS", "SHORTLINK", "CUSTOMER_CHAT_PLUGIN", "MESSENGER_CODE", "DISCOVER_TAB":
		default:
			v.bad(f+".source", "%q is not a referral source Meta sends (ADS, SHORTLINK, CUSTOMER_CHAT_PLUGIN, MESSENGER_CODE, DISCOVER_TAB)", e.Source)
		}
		target(f+".to", e.To)
		metadata(f+".metadata", e.Metadata)
	}
	if fo := r.Failover; fo != nil {
		f := path + ".failover"
		positive(f+".after", fo.After)
		target(f+".to", fo.To)
		if fo.To != "" && fo.To == p.Primary {
			v.bad(f+".to", "%q is the primary, whose bot is the one failing", fo.To)
		}
	}
	if h := r.Hours; h != nil {
		f := path + ".hours"
		loc, err := time.LoadLocation(h.Timezone)
		switch {
		case h.Timezone == "":
			v.bad(f+".timezone", "required: an IANA time zone such as Europe/Paris")
		case err != nil:
			v.bad(f+".timezone", "%q is not an IANA time zone such as Europe/Paris", h.Timezone)
		}
		if len(h.Open) == 0 {
			v.bad(f+".open", "required: the days and hours people are there, such as mon-fri: \"09:00-18:00\"")
		}
		if err == nil {
			w, werr := rules.ParseWeek(loc, h.Open)
			if werr != nil {
				v.bad(f+".open", "%v", werr)
			}
			h.Week = w
		}
	}
}
