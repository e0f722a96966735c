package messengertest

import (
	"github.com/batonhq/baton/messenger"
)

// inbox acts as a staff member in Meta's inbox (the Page Inbox, or
// Instagram's on an Instagram account), which is an app on the page like
// any other but answers from Meta's side: it takes threads, replies (every
// app sees the echo), lets Meta AI reply, and marks threads done.
type inbox struct {
	w     *world
	rules *rules
}

// take gives the thread to the inbox, as moving it to the Main folder or
// replying from the inbox does; the previous owner is told.
func (ib *inbox) take(t *thread) {
	id := t.page.inboxID()
	if t.owner == id {
		t.expires = ib.w.now().Add(controlTTL)
		return
	}
	prev := t.owner
	ib.w.grant(t, id)
	if prev != "" {
		ib.w.deliverHandover(t, messenger.Event{TakeThreadControl: &messenger.TakeThreadControl{
			PreviousOwnerAppID: prev, NewOwnerAppID: id,
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
	if pg.apps[pg.inboxID()] == nil {
		return nil, ErrNoInbox
	}
	t := ib.w.thread(pg, psid, false)
	if t == nil {
		return nil, ErrNoThread
	}
	return t, nil
}

// replies, aiReplies, takes and done are Platform.InboxReplies,
// InboxAIReplies, InboxTakes and InboxDone.
func (ib *inbox) replies(pageID, psid messenger.ID, text string) (string, error) {
	ib.w.mu.Lock()
	defer ib.w.mu.Unlock()
	t, err := ib.thread(pageID, psid)
	if err != nil {
		return "", err
	}
	ib.take(t)
	return ib.echo(t, text, false), nil
}

// aiReplies sends Meta AI's reply: an echo from the inbox's app id marked
// ai_generated. Control moves only when Settings.AIReplyTakesControl says
// so (REFERENCE §0.1: field report).
func (ib *inbox) aiReplies(pageID, psid messenger.ID, text string) (string, error) {
	ib.w.mu.Lock()
	defer ib.w.mu.Unlock()
	t, err := ib.thread(pageID, psid)
	if err != nil {
		return "", err
	}
	if ib.w.settings.AIReplyTakesControl {
		ib.take(t)
	}
	return ib.echo(t, text, true), nil
}

func (ib *inbox) echo(t *thread, text string, aiGenerated bool) string {
	mid := newID("m_")
	from := ib.w.apps[t.page.inboxID()]
	ib.w.recordOutbound(t, from, mid, &messenger.SendRequest{Message: &messenger.OutgoingMessage{Text: text}}, aiGenerated)
	return mid
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

// done hands a thread the inbox owns back: to the default app (idle on a
// page without one, or when Settings.InboxDoneTo is "idle"), with no
// webhook unless Settings.InboxDoneWebhook asks for a pass_thread_control
// (REFERENCE §0.1).
func (ib *inbox) done(pageID, psid messenger.ID) error {
	ib.w.mu.Lock()
	defer ib.w.mu.Unlock()
	t, err := ib.thread(pageID, psid)
	if err != nil {
		return err
	}
	id := t.page.inboxID()
	if t.owner != id {
		return ErrNotInbox
	}
	to := t.page.defaultApp
	if ib.w.settings.InboxDoneTo == InboxDoneToIdle {
		to = ""
	}
	if to == "" {
		t.owner = ""
	} else {
		ib.w.grant(t, to)
	}
	if ib.w.settings.InboxDoneWebhook && to != "" {
		ib.w.deliverHandover(t, messenger.Event{PassThreadControl: &messenger.PassThreadControl{
			PreviousOwnerAppID: id, NewOwnerAppID: to,
		}}, to, ib.w.settings.PassWebhookTo == "all")
	}
	return nil
}
