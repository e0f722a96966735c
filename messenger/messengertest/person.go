package messengertest

import (
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/control"
	"github.com/batonhq/baton/messenger/messengertest/profiles"
)

// Errors of the control surface (see package control).
var (
	ErrUnknownPage = control.ErrUnknownPage
	ErrNoThread    = control.ErrNoThread
	ErrNotInbox    = control.ErrNotInbox
	ErrNoInbox     = control.ErrNoInbox
	ErrUnknownApp  = control.ErrUnknownApp
)

// UserMessage is what a person writes.
type UserMessage = control.UserMessage

// PersonName is the name the platform gives the person psid: the same on
// every run, so that a test knows what a bot will read (package profiles
// answers it from the User Profile API).
func PersonName(psid messenger.ID) (first, last string) { return profiles.PersonName(psid) }

// person acts as a Facebook user writing to a page: each action starts
// or continues the person's thread, runs entry routing, and routes the
// event to the page's apps as Meta does.
type person struct {
	w *world
}

// activity records that the person acted now: entry routing of an idle
// thread (an m.me ref's link route, else the social route), the start of a
// new messaging window and a fresh 24 hours of control for the owner.
func (p *person) activity(t *thread, ref string) {
	now := p.w.now()
	if t.owner == "" && t.page.mode == ModeConversationRouting {
		target := t.page.linkRoutes[ref]
		if target == "" {
			target = t.page.socialRoute
		}
		if target != "" {
			p.w.grant(t, target)
			if p.w.settings.RoutingWebhook {
				p.w.deliverHandover(t, messenger.Event{PassThreadControl: &messenger.PassThreadControl{NewOwnerAppID: target}}, target, false)
			}
		}
	}
	t.lastUserMsg = now
	if t.owner != "" && t.expires.Before(now.Add(controlTTL)) {
		t.expires = now.Add(controlTTL)
	}
}

// thread finds or starts the thread of a person who acts now. Callers
// hold w.mu.
func (p *person) thread(pageID, psid messenger.ID) (*thread, error) {
	pg, err := p.w.page(pageID)
	if err != nil {
		return nil, err
	}
	return p.w.thread(pg, psid, true), nil
}

// sends, postback, referral, optsIn and reads are Platform.UserSends,
// UserPostback, UserReferral, UserOptsIn and UserReads.
func (p *person) sends(pageID, psid messenger.ID, m UserMessage) (string, error) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	t, err := p.thread(pageID, psid)
	if err != nil {
		return "", err
	}
	if m.Ref != "" {
		p.activity(t, m.Ref)
		p.w.route(t, messenger.Event{Referral: &messenger.Referral{Ref: m.Ref, Source: "SHORTLINK", Type: "OPEN_THREAD"}}, "messaging_referrals")
	}
	p.activity(t, "")
	mid := newID("m_")
	msg := &messenger.Message{Mid: mid, Text: m.Text, Attachments: m.Attachments}
	if m.QuickReply != "" {
		msg.QuickReply = &messenger.QuickReply{Payload: m.QuickReply}
	}
	t.messages = append(t.messages, ThreadMessage{Mid: mid, At: p.w.now(), Direction: "in", Text: m.Text, Payload: m.QuickReply, HasAttach: len(m.Attachments) > 0})
	p.w.route(t, messenger.Event{Message: msg}, "messages")
	return mid, nil
}

func (p *person) postback(pageID, psid messenger.ID, title, payload, ref string) (string, error) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	t, err := p.thread(pageID, psid)
	if err != nil {
		return "", err
	}
	p.activity(t, ref)
	mid := newID("m_")
	pb := &messenger.Postback{Title: title, Payload: payload, Mid: mid}
	if ref != "" {
		pb.Referral = &messenger.Referral{Ref: ref, Source: "SHORTLINK", Type: "OPEN_THREAD"}
	}
	t.messages = append(t.messages, ThreadMessage{Mid: mid, At: p.w.now(), Direction: "in", Text: title, Payload: payload})
	p.w.route(t, messenger.Event{Postback: pb}, "messaging_postbacks")
	return mid, nil
}

func (p *person) referral(pageID, psid messenger.ID, ref, source, adID string) error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	pg, err := p.w.page(pageID)
	if err != nil {
		return err
	}
	if source == "" {
		source = "SHORTLINK"
	}
	t := p.w.thread(pg, psid, true)
	p.activity(t, ref)
	p.w.route(t, messenger.Event{Referral: &messenger.Referral{Ref: ref, Source: source, Type: "OPEN_THREAD", AdID: messenger.ID(adID)}}, "messaging_referrals")
	return nil
}

func (p *person) optsIn(pageID, psid messenger.ID, payload string) (string, error) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	t, err := p.thread(pageID, psid)
	if err != nil {
		return "", err
	}
	tok := newID("OTN_")
	p.w.otns[tok] = &otnToken{page: pageID, psid: psid, payload: payload, created: p.w.now()}
	p.w.route(t, messenger.Event{Optin: &messenger.Optin{Type: messenger.OptinOneTimeNotif, Payload: payload, OneTimeNotifToken: tok}}, "messaging_optins")
	return tok, nil
}

func (p *person) reads(pageID, psid messenger.ID) error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	pg, err := p.w.page(pageID)
	if err != nil {
		return err
	}
	t := p.w.thread(pg, psid, false)
	if t == nil {
		return ErrNoThread
	}
	p.w.route(t, messenger.Event{Read: &messenger.Read{Watermark: p.w.now().UnixMilli()}}, "message_reads")
	return nil
}
