package messengertest

import (
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/messenger"
)

// Errors of the control surface.
var (
	ErrUnknownPage = errors.New("unknown page")
	ErrNoThread    = errors.New("the person has not written to this page")
	ErrNotInbox    = errors.New("the Page Inbox does not own this thread")
	ErrNoInbox     = errors.New("the Page Inbox is not connected to this page")
)

// UserMessage is what a person writes.
type UserMessage struct {
	Text        string                 `json:"text"`
	QuickReply  string                 `json:"quick_reply"` // payload of the tapped quick reply
	Ref         string                 `json:"ref"`         // m.me ref the person arrived with
	Attachments []messenger.Attachment `json:"attachments"`
}

func (p *Platform) page(id messenger.ID) (*page, error) {
	pg := p.pages[id]
	if pg == nil {
		return nil, fmt.Errorf("%w %s", ErrUnknownPage, id)
	}
	return pg, nil
}

// userActivity records that the person acted now: entry routing of an idle
// thread (an m.me ref's link route, else the social route), the start of a
// new messaging window and a fresh 24 hours of control for the owner.
func (p *Platform) userActivity(t *thread, ref string) {
	now := p.now()
	if t.owner == "" && t.page.mode == ModeConversationRouting {
		target := t.page.linkRoutes[ref]
		if target == "" {
			target = t.page.socialRoute
		}
		if target != "" {
			p.grant(t, target)
			if p.settings.RoutingWebhook {
				p.deliverHandover(t, messenger.Event{PassThreadControl: &messenger.PassThreadControl{NewOwnerAppID: target}}, target, false)
			}
		}
	}
	t.lastUserMsg = now
	if t.owner != "" && t.expires.Before(now.Add(controlTTL)) {
		t.expires = now.Add(controlTTL)
	}
}

// personThread finds or starts the thread of a person who acts now.
// Callers hold p.mu.
func (p *Platform) personThread(pageID, psid messenger.ID) (*thread, error) {
	pg, err := p.page(pageID)
	if err != nil {
		return nil, err
	}
	return p.thread(pg, psid, true), nil
}

// UserSends delivers a message from the person psid to the page, as Meta
// would: routed to the owner on messaging and the others on standby. A ref
// sends an m.me referral first. It returns the message id.
func (p *Platform) UserSends(pageID, psid messenger.ID, m UserMessage) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, err := p.personThread(pageID, psid)
	if err != nil {
		return "", err
	}
	if m.Ref != "" {
		p.userActivity(t, m.Ref)
		p.route(t, messenger.Event{Referral: &messenger.Referral{Ref: m.Ref, Source: "SHORTLINK", Type: "OPEN_THREAD"}}, "messaging_referrals")
	}
	p.userActivity(t, "")
	mid := newID("m_")
	msg := &messenger.Message{Mid: mid, Text: m.Text, Attachments: m.Attachments}
	if m.QuickReply != "" {
		msg.QuickReply = &messenger.QuickReply{Payload: m.QuickReply}
	}
	t.messages = append(t.messages, ThreadMessage{Mid: mid, At: p.now(), Direction: "in", Text: m.Text, Payload: m.QuickReply, HasAttach: len(m.Attachments) > 0})
	p.route(t, messenger.Event{Message: msg}, "messages")
	return mid, nil
}

// UserPostback delivers a button tap; a ref makes it the Get Started tap of
// a person who came through an m.me link.
func (p *Platform) UserPostback(pageID, psid messenger.ID, title, payload, ref string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, err := p.personThread(pageID, psid)
	if err != nil {
		return "", err
	}
	p.userActivity(t, ref)
	mid := newID("m_")
	pb := &messenger.Postback{Title: title, Payload: payload, Mid: mid}
	if ref != "" {
		pb.Referral = &messenger.Referral{Ref: ref, Source: "SHORTLINK", Type: "OPEN_THREAD"}
	}
	t.messages = append(t.messages, ThreadMessage{Mid: mid, At: p.now(), Direction: "in", Text: title, Payload: payload})
	p.route(t, messenger.Event{Postback: pb}, "messaging_postbacks")
	return mid, nil
}

// UserReferral delivers an m.me link or ad click into an existing thread.
// source is SHORTLINK (default) or ADS.
func (p *Platform) UserReferral(pageID, psid messenger.ID, ref, source, adID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	pg, err := p.page(pageID)
	if err != nil {
		return err
	}
	if source == "" {
		source = "SHORTLINK"
	}
	t := p.thread(pg, psid, true)
	p.userActivity(t, ref)
	p.route(t, messenger.Event{Referral: &messenger.Referral{Ref: ref, Source: source, Type: "OPEN_THREAD", AdID: messenger.ID(adID)}}, "messaging_referrals")
	return nil
}

// UserOptsIn delivers a one-time notification opt-in and returns its
// token, usable once within a year.
func (p *Platform) UserOptsIn(pageID, psid messenger.ID, payload string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, err := p.personThread(pageID, psid)
	if err != nil {
		return "", err
	}
	tok := newID("OTN_")
	p.otns[tok] = &otnToken{page: pageID, psid: psid, payload: payload, created: p.now()}
	p.route(t, messenger.Event{Optin: &messenger.Optin{Type: messenger.OptinOneTimeNotif, Payload: payload, OneTimeNotifToken: tok}}, "messaging_optins")
	return tok, nil
}

// UserReads marks everything sent so far as read.
func (p *Platform) UserReads(pageID, psid messenger.ID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	pg, err := p.page(pageID)
	if err != nil {
		return err
	}
	t := p.thread(pg, psid, false)
	if t == nil {
		return ErrNoThread
	}
	p.route(t, messenger.Event{Read: &messenger.Read{Watermark: p.now().UnixMilli()}}, "message_reads")
	return nil
}

// inboxTakes gives the thread to the Page Inbox, as moving it to the Main
// folder or replying from the inbox does; the previous owner is told.
func (p *Platform) inboxTakes(t *thread) {
	if t.owner == messenger.PageInboxAppID {
		t.expires = p.now().Add(controlTTL)
		return
	}
	prev := t.owner
	p.grant(t, messenger.PageInboxAppID)
	if prev != "" {
		p.deliverHandover(t, messenger.Event{TakeThreadControl: &messenger.TakeThreadControl{
			PreviousOwnerAppID: prev, NewOwnerAppID: messenger.PageInboxAppID,
		}}, prev, p.settings.TakeWebhookTo == "all")
	}
}

func (p *Platform) inboxThread(pageID, psid messenger.ID) (*thread, error) {
	pg, err := p.page(pageID)
	if err != nil {
		return nil, err
	}
	if pg.apps[messenger.PageInboxAppID] == nil {
		return nil, ErrNoInbox
	}
	t := p.thread(pg, psid, false)
	if t == nil {
		return nil, ErrNoThread
	}
	return t, nil
}

// InboxReplies sends a staff member's reply from Page Inbox: the inbox
// takes the thread if it does not own it, and every app sees the echo with
// the inbox's app_id.
func (p *Platform) InboxReplies(pageID, psid messenger.ID, text string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, err := p.inboxThread(pageID, psid)
	if err != nil {
		return "", err
	}
	p.inboxTakes(t)
	mid := newID("m_")
	p.recordOutbound(t, p.apps[messenger.PageInboxAppID], mid, &messenger.SendRequest{Message: &messenger.OutgoingMessage{Text: text}})
	return mid, nil
}

// InboxTakes moves the thread to the inbox's Main folder: the inbox takes
// control.
func (p *Platform) InboxTakes(pageID, psid messenger.ID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, err := p.inboxThread(pageID, psid)
	if err != nil {
		return err
	}
	p.inboxTakes(t)
	return nil
}

// InboxDone marks the conversation done in Page Inbox: control passes back
// to the default app (primary receiver), or the thread becomes idle on a
// zero-config page. How Meta's inbox does this under Conversation Routing
// is not documented; this follows the legacy "Done" behaviour.
func (p *Platform) InboxDone(pageID, psid messenger.ID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, err := p.inboxThread(pageID, psid)
	if err != nil {
		return err
	}
	if t.owner != messenger.PageInboxAppID {
		return ErrNotInbox
	}
	if t.page.defaultApp == "" {
		t.owner = ""
		return nil
	}
	return apiErr(p.pass(t.page.apps[messenger.PageInboxAppID], t, t.page.defaultApp, ""))
}

func apiErr(e *messenger.Error) error {
	if e == nil {
		return nil
	}
	return e
}

// Advance moves the platform clock forward and applies the expiries that
// fall due.
func (p *Platform) Advance(d time.Duration) time.Time {
	now := p.clock.Advance(d)
	p.expireAll()
	return now
}
