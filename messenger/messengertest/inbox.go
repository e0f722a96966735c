package messengertest

import (
	"github.com/batonhq/baton/messenger"
)

// inbox acts as a staff member in Meta's Page Inbox, which is an app on
// the page like any other but answers from Meta's side: it takes threads,
// replies (every app sees the echo) and marks them done.
type inbox struct {
	w     *world
	rules *rules
}

// take gives the thread to the Page Inbox, as moving it to the Main
// folder or replying from the inbox does; the previous owner is told.
func (ib *inbox) take(t *thread) {
	if t.owner == messenger.PageInboxAppID {
		t.expires = ib.w.now().Add(controlTTL)
		return
	}
	prev := t.owner
	ib.w.grant(t, messenger.PageInboxAppID)
	if prev != "" {
		ib.w.deliverHandover(t, messenger.Event{TakeThreadControl: &messenger.TakeThreadControl{
			PreviousOwnerAppID: prev, NewOwnerAppID: messenger.PageInboxAppID,
		}}, prev, ib.w.settings.TakeWebhookTo == "all")
	}
}

// thread finds the person's thread on a page with the inbox. Callers
// hold w.mu.
func (ib *inbox) thread(pageID, psid messenger.ID) (*thread, error) {
	pg, err := ib.w.page(pageID)
	if err != nil {
		return nil, err
	}
	if pg.apps[messenger.PageInboxAppID] == nil {
		return nil, ErrNoInbox
	}
	t := ib.w.thread(pg, psid, false)
	if t == nil {
		return nil, ErrNoThread
	}
	return t, nil
}

// replies, takes and done are Platform.InboxReplies, InboxTakes and
// InboxDone.
func (ib *inbox) replies(pageID, psid messenger.ID, text string) (string, error) {
	ib.w.mu.Lock()
	defer ib.w.mu.Unlock()
	t, err := ib.thread(pageID, psid)
	if err != nil {
		return "", err
	}
	ib.take(t)
	mid := newID("m_")
	ib.w.recordOutbound(t, ib.w.apps[messenger.PageInboxAppID], mid, &messenger.SendRequest{Message: &messenger.OutgoingMessage{Text: text}})
	return mid, nil
}

func (ib *inbox) takes(pageID, psid messenger.ID) error {
	ib.w.mu.Lock()
	defer ib.w.mu.Unlock()
	t, err := ib.thread(pageID, psid)
	if err != nil {
		return err
	}
	ib.take(t)
	return nil
}

func (ib *inbox) done(pageID, psid messenger.ID) error {
	ib.w.mu.Lock()
	defer ib.w.mu.Unlock()
	t, err := ib.thread(pageID, psid)
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
	return apiErr(ib.rules.pass(t.page.apps[messenger.PageInboxAppID], t, t.page.defaultApp, ""))
}

func apiErr(e *messenger.Error) error {
	if e == nil {
		return nil
	}
	return e
}
