// Package messengertest is a fake of Meta's Messenger Platform that speaks
// real HTTP: the Graph API's thread-control, thread_owner, subscription and
// Send API endpoints with Conversation Routing, zero-config and legacy
// Handover rules, and a webhook sender that routes, escapes, signs and
// retries like Meta. A control surface under /_platform/ lets tests and
// people act as a Facebook user, a Page Inbox agent, or the passage of time,
// and make any Graph call fail the way Meta's do.
//
// It backs Baton's tests, `baton platform` and `baton demo`. Where Meta's
// behaviour is not documented, Settings chooses it.
//
// # Parts
//
// A Platform is a few parts around one shared state, configured by a
// Config (package fakeconfig):
//
//   - the world (world.go, route.go) holds apps, pages, tokens and threads
//     under one mutex, applies control expiry and turns events on a thread
//     into webhooks queued per app; views.go is what the subpackages see
//     of it, each through a small interface of its own;
//   - the rules (rules.go, edges.go) are the thread-control and Send API
//     rules, the one place that changes who owns a thread on an app's
//     behalf;
//   - the Graph API (package graph) serves /vNN.N/{node}/{edge}, records
//     each call (package calllog), answers refusals in Meta's words
//     (package metaerr), lets the fault injector answer instead, and hands
//     each call to the rules, the profiles or the set-up calls;
//   - the profiles (package profiles) are people's User Profile API, the
//     messenger profile of each (page, app), attachment uploads and
//     personas;
//   - the set-up calls (package setup) are debug_token, the apps'
//     /{app-id}/subscriptions and the pages' subscribed_apps;
//   - the webhook sender (package hooks) posts the queued
//     webhooks, signed, with retries, on one lane per app: each app's
//     copies travel apart from the other apps';
//   - the person and the inbox (person.go, inbox.go) act as a Facebook
//     or Instagram user, a staff member in the Page Inbox (Instagram's
//     inbox on an Instagram account), and Meta AI replying from it;
//   - the control surface (package control, and package faults for
//     /_platform/faults) serves /_platform/ over the Platform's methods;
//   - the fault injector (package faults) makes matching Graph
//     calls fail: an error answer (a Meta-shaped envelope by default), a
//     held request that ends without an answer, a dropped connection, or
//     a call that is applied for real while its answer says otherwise.
//
// # Meta's disorder
//
// Meta sends every subscribed app its own copy of an event; the copies can
// arrive in either order, retries make one app's webhooks arrive out of
// order or twice, a batch's entries come in any order, and some control
// changes come with no webhook at all (REFERENCE §0.1). Each is a setting
// (see Settings), drawn from Settings.Seed where it is random:
// webhook_order (per_app or shuffled within webhook_window),
// webhook_delay, webhook_repeat, batch_order with max_batch; and the
// silent changes, social and link routing, expiry, the inbox marking a
// thread done and Meta AI replies, send no webhook unless routing_webhook,
// expiry_webhook or inbox_done_webhook ask for one. POST
// /_platform/webhooks/hold and /_platform/webhooks/release ({"app": name
// or id}, or {} for every app), or HoldWebhooks and ReleaseWebhooks, hold
// an app's webhooks so that a test chooses which app hears of an event
// first; Settle does not wait for held webhooks.
//
// # Instagram
//
// A page with platform: instagram is an Instagram professional account:
// its webhooks carry object "instagram" and the account id as entry id
// (messenger.ParseWebhook reads them), Instagram's inbox
// (messenger.InstagramInboxAppID) stands in for the Page Inbox, and
// refusals carry Instagram's subcodes (100/2534037 not the thread owner,
// 10/2534022 outside the window). Conversation Routing, the Graph calls,
// the windows and the control surface are Messenger's.
//
// # Faults
//
// POST /_platform/faults (or AddFault) adds a Fault; see Fault and FaultMode
// for the fields and what each mode does. GET /_platform/faults lists the
// active ones, DELETE /_platform/faults clears them all and DELETE
// /_platform/faults/{id} one. A faulted call is still recorded in Calls,
// with the fault's id. Fault delays are real time, not the platform clock.
package messengertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/calllog"
	"github.com/batonhq/baton/messenger/messengertest/control"
	"github.com/batonhq/baton/messenger/messengertest/faults"
	"github.com/batonhq/baton/messenger/messengertest/graph"
	"github.com/batonhq/baton/messenger/messengertest/hooks"
	"github.com/batonhq/baton/messenger/messengertest/profiles"
	"github.com/batonhq/baton/messenger/messengertest/setup"
)

// Windows and limits of the platform (REFERENCE §4, §5).
const (
	controlTTL       = 24 * time.Hour
	messagingWindow  = 24 * time.Hour
	humanAgentWindow = 7 * 24 * time.Hour
	otnLifetime      = 365 * 24 * time.Hour
	maxExtendSeconds = 7 * 24 * 3600
	maxTextLen       = 2000
	maxSendMetadata  = 1000
)

// Platform is the fake Messenger Platform. Create it with New, serve
// Handler, and Close it to stop the webhook senders and release the
// requests faults hold.
type Platform struct {
	// Set by options before the parts are built.
	clock      Clock
	log        *zap.Logger
	hookClient *http.Client

	w      *world
	calls  *calllog.Log
	faults *faults.Injector
	hooks  *hooks.Sender
	graph  *graph.API
	setup  *setup.API
	person *person
	inbox  *inbox
}

// Clock is the platform's time: it moves when /_platform/clock says so.
// *clock.Manual (tests) and *clock.Offset (people) are Clocks.
type Clock interface {
	Now() time.Time
	Advance(d time.Duration) time.Time
	Set(t time.Time) time.Time
}

// Option configures a Platform.
type Option func(*Platform)

// WithClock makes the platform read time from c, so that a test can share
// one clock between the platform and the code under test.
func WithClock(c Clock) Option { return func(p *Platform) { p.clock = c } }

// WithLogger sets the platform's logger.
func WithLogger(l *zap.Logger) Option { return func(p *Platform) { p.log = l } }

// WithHTTPClient sets the client webhooks are sent with.
func WithHTTPClient(c *http.Client) Option { return func(p *Platform) { p.hookClient = c } }

// New builds a platform from cfg.
func New(cfg Config, opts ...Option) (*Platform, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("platform config: %w", err)
	}
	settings := cfg.Settings
	settings.ApplyDefaults()
	p := &Platform{log: zap.NewNop(), hookClient: &http.Client{}}
	for _, o := range opts {
		o(p)
	}
	if p.clock == nil {
		// Time flows with the wall clock; a configured start shifts it.
		start := time.Now().UTC()
		if cfg.Start != "" {
			t, err := time.Parse(time.RFC3339, cfg.Start)
			if err != nil {
				return nil, fmt.Errorf("platform config: start: %w", err)
			}
			start = t
		}
		p.clock = clock.NewOffset(start)
	}
	p.w = newWorld(cfg, settings, p.clock, p.log)
	p.hooks = hooks.NewSender(p.hookClient, p.clock, p.log.Named("webhooks"), settings, p.w.markWebhookResult)
	p.w.out = p.hooks
	p.calls = &calllog.Log{}
	p.faults = faults.New(p.w, p.log.Named("faults"))
	media := profiles.New(p.w)
	p.w.personaName = media.PersonaName // Media's lock comes after the world's: see Media
	rules := &rules{w: p.w, media: media}
	answer := graph.NewAnswerer(p.faults, p.calls)
	p.setup = setup.New(cfg, p.w, answer, p.hooks.Verify)
	p.graph = graph.New(p.w, rules, media, p.setup, answer, settings.RequireAppSecretProof)
	p.person = &person{w: p.w}
	p.inbox = &inbox{w: p.w, rules: rules}
	return p, nil
}

// Handler serves the Graph API (with and without a version segment) and the
// control surface under /_platform/.
func (p *Platform) Handler() http.Handler {
	r := mux.NewRouter()
	ctl := r.PathPrefix("/_platform").Subrouter()
	control.Register[ThreadState, PageInfo](ctl, p, p.w)
	p.faults.Register(ctl)
	p.setup.Register(r)
	p.graph.Register(r)
	return r
}

// Clock returns the platform's clock; advance it to expire control.
func (p *Platform) Clock() Clock { return p.clock }

// Close stops the webhook senders, whose queued webhooks are dropped, and
// ends every request a fault holds or delays (its connection is closed
// without an answer). It returns once those requests are released.
func (p *Platform) Close() {
	p.faults.Close()
	p.hooks.Close()
}

// Advance moves the platform clock forward and applies the expiries that
// fall due.
func (p *Platform) Advance(d time.Duration) time.Time { return p.w.advance(d) }

// Thread returns the platform's truth about a thread, with expiry applied
// as of the platform clock. ok is false for an unknown page.
func (p *Platform) Thread(pageID, psid messenger.ID) (ThreadState, bool) {
	return p.w.threadState(pageID, psid)
}

// Pages lists the pages and their connected apps.
func (p *Platform) Pages() []PageInfo { return p.w.pageInfos() }

// Calls returns every Graph call received so far, oldest first.
func (p *Platform) Calls() []Call { return p.calls.List() }

// Settle blocks until every queued webhook has been delivered or has
// failed for good: the signal a test waits on instead of sleeping.
func (p *Platform) Settle(ctx context.Context) error { return p.hooks.Settle(ctx) }

// Webhooks returns the record of every webhook POST, oldest first.
func (p *Platform) Webhooks() []WebhookRecord { return p.hooks.List() }

// VerifyCallback performs Meta's subscription handshake with the app's
// callback: GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..,
// which must answer 200 with the challenge as its body.
func (p *Platform) VerifyCallback(ctx context.Context, appName string) error {
	callback, verifyToken, ok := p.w.callbackOf(appName)
	if !ok {
		return fmt.Errorf("app %q has no callback_url", appName)
	}
	return p.hooks.Verify(ctx, appName, callback, verifyToken)
}

// UserSends delivers a message from the person psid to the page, as Meta
// would: routed to the owner on messaging and the others on standby. A ref
// sends an m.me referral first. It returns the message id.
func (p *Platform) UserSends(pageID, psid messenger.ID, m UserMessage) (string, error) {
	return p.person.sends(pageID, psid, m)
}

// UserPostback delivers a button tap; a ref makes it the Get Started tap of
// a person who came through an m.me link.
func (p *Platform) UserPostback(pageID, psid messenger.ID, title, payload, ref string) (string, error) {
	return p.person.postback(pageID, psid, title, payload, ref)
}

// UserReferral delivers an m.me link or ad click into an existing thread.
// source is SHORTLINK (default) or ADS.
func (p *Platform) UserReferral(pageID, psid messenger.ID, ref, source, adID string) error {
	return p.person.referral(pageID, psid, ref, source, adID)
}

// UserOptsIn delivers a one-time notification opt-in and returns its
// token, usable once within a year.
func (p *Platform) UserOptsIn(pageID, psid messenger.ID, payload string) (string, error) {
	return p.person.optsIn(pageID, psid, payload)
}

// UserReads marks everything sent so far as read.
func (p *Platform) UserReads(pageID, psid messenger.ID) error { return p.person.reads(pageID, psid) }

// InboxReplies sends a staff member's reply from Page Inbox: the inbox
// takes the thread if it does not own it, and every app sees the echo with
// the inbox's app_id.
func (p *Platform) InboxReplies(pageID, psid messenger.ID, text string) (string, error) {
	return p.inbox.replies(pageID, psid, text)
}

// InboxTakes moves the thread to the inbox's Main folder: the inbox takes
// control.
func (p *Platform) InboxTakes(pageID, psid messenger.ID) error { return p.inbox.takes(pageID, psid) }

// InboxDone marks the conversation done in the inbox: control passes back
// to the default app (primary receiver), or the thread becomes idle on a
// zero-config page or with Settings.InboxDoneTo "idle". No app is told
// unless Settings.InboxDoneWebhook is set (REFERENCE §0.1); how Meta's
// inbox hands control back under Conversation Routing is undocumented.
func (p *Platform) InboxDone(pageID, psid messenger.ID) error { return p.inbox.done(pageID, psid) }

// InboxAIReplies sends Meta AI's reply from the inbox: every app sees an
// echo with the inbox's app_id and "ai_generated": true in the message.
// Control does not move unless Settings.AIReplyTakesControl is set.
func (p *Platform) InboxAIReplies(pageID, psid messenger.ID, text string) (string, error) {
	return p.inbox.aiReplies(pageID, psid, text)
}

// HoldWebhooks stops the webhooks of one app (by name or id; every app's
// when app is empty) after the POST in flight: they queue until
// ReleaseWebhooks, and Settle does not wait for them. A test holds one app
// to make another app's copy of an event arrive first.
func (p *Platform) HoldWebhooks(app string) error { return p.holdOrRelease(app, p.hooks.Hold) }

// ReleaseWebhooks lets held webhooks go: one app's, or with app empty
// every app's.
func (p *Platform) ReleaseWebhooks(app string) error {
	return p.holdOrRelease(app, p.hooks.Release)
}

// AddFault makes the Graph calls that match f fail as f says, until it has
// affected f.Count calls (0: until cleared). It returns f as stored, with
// its ID and defaults filled in, or an error naming each invalid field.
func (p *Platform) AddFault(f Fault) (Fault, error) { return p.faults.Add(f) }

// Faults lists the active faults, oldest first, with how many calls each
// will still affect and how many it has affected.
func (p *Platform) Faults() []Fault { return p.faults.List() }

// ClearFaults removes every fault; calls that faults hold now are not
// released (Close releases them).
func (p *Platform) ClearFaults() { p.faults.Clear() }

// ClearFault removes the fault with id and reports whether it was active.
func (p *Platform) ClearFault(id string) bool { return p.faults.ClearOne(id) }

func newID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// ThreadMessage is one message in a thread, as the platform saw it.
type ThreadMessage struct {
	Mid       string       `json:"mid"`
	At        time.Time    `json:"at"`
	Direction string       `json:"direction"` // "in": from the person; "out": to the person
	AppID     messenger.ID `json:"app_id,omitempty"`
	App       string       `json:"app,omitempty"`
	Text      string       `json:"text,omitempty"`
	Payload   string       `json:"payload,omitempty"`
	Metadata  string       `json:"metadata,omitempty"`
	Tag       string       `json:"tag,omitempty"`
	HasAttach bool         `json:"has_attachment,omitempty"`
	// Persona is the name of the persona the message was sent under,
	// what the person sees instead of the page's name.
	Persona string `json:"persona,omitempty"`
	// AIGenerated marks a Meta AI reply sent from the inbox.
	AIGenerated bool `json:"ai_generated,omitempty"`
}

// ThreadState is the platform's truth about one thread.
type ThreadState struct {
	PageID            messenger.ID    `json:"page_id"`
	PSID              messenger.ID    `json:"psid"`
	OwnerAppID        *messenger.ID   `json:"owner_app_id"`
	OwnerApp          string          `json:"owner_app,omitempty"`
	ExpiresAt         *time.Time      `json:"expires_at"`
	LastUserMessageAt *time.Time      `json:"last_user_message_at"`
	Messages          []ThreadMessage `json:"messages"`
}

// holdOrRelease is HoldWebhooks and ReleaseWebhooks.
func (p *Platform) holdOrRelease(app string, act func(messenger.ID)) error {
	var id messenger.ID
	if app != "" {
		var ok bool
		if id, ok = p.w.appID(app); !ok {
			return fmt.Errorf("%w %q", ErrUnknownApp, app)
		}
	}
	act(id)
	return nil
}

// PageInfo describes a page for people trying the platform.
type PageInfo struct {
	ID         messenger.ID `json:"id"`
	Name       string       `json:"name,omitempty"`
	Mode       Mode         `json:"mode"`
	Platform   string       `json:"platform"`
	DefaultApp string       `json:"default_app,omitempty"`
	Apps       []AppInfo    `json:"apps"`
}

// AppInfo is an app as connected to one page.
type AppInfo struct {
	Name             string       `json:"name"`
	ID               messenger.ID `json:"id"`
	CallbackURL      string       `json:"callback_url,omitempty"`
	Takeover         bool         `json:"takeover"`
	SubscribedFields []string     `json:"subscribed_fields"`
}
