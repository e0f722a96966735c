package messengertest

import (
	"time"
	"unicode/utf8"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// rules are the thread-control and Send API rules of REFERENCE §1.2, §1.3,
// §4 and §5.1, one method per call. Each runs with w.mu held, on a thread
// that exists, changes it (and queues the webhooks the change causes), and
// returns Meta's error for a refusal. The Graph endpoint and the Page
// Inbox both act through them.
type rules struct {
	w *world
	// media refuses a send naming an attachment or persona the page does
	// not have; called with w.mu held.
	media sendChecker
}

// sendChecker is what the Send API rules need of the pages' uploads and
// personas (package profiles).
type sendChecker interface {
	CheckSend(page messenger.ID, req *messenger.SendRequest) *messenger.Error
}

func (r *rules) checkMetadata(md string) *messenger.Error {
	if lim := r.w.settings.MetadataLimit; lim > 0 && utf8.RuneCountInString(md) > lim {
		return metaerr.InvalidParameter()
	}
	return nil
}

// isPrimary reports whether the app is the page's primary receiver (legacy)
// or default app (Conversation Routing).
func isPrimary(pg *page, id messenger.ID) bool { return pg.defaultApp == id }

func (r *rules) pass(caller *pageApp, t *thread, target messenger.ID, md string) *messenger.Error {
	if err := r.checkMetadata(md); err != nil {
		return err
	}
	pg, me := t.page, caller.app.id
	switch pg.mode {
	case ModeLegacy:
		// The primary may pass at any time but must name the target; a
		// secondary must own the thread, and its pass defaults to the
		// primary.
		if !isPrimary(pg, me) && t.owner != me {
			return notOwner(pg, metaerr.NotOwnerPass)
		}
		if target == "" {
			if isPrimary(pg, me) {
				return metaerr.ParamRequired("target_app_id")
			}
			target = pg.defaultApp
		}
		if target == me {
			return metaerr.InvalidParameter()
		}
	case ModeZeroConfig:
		if t.owner != "" && t.owner != me {
			return notOwner(pg, metaerr.NotOwnerPass)
		}
		if target == "" {
			return metaerr.ParamRequired("target_app_id") // no default app to fall back to
		}
		if target == me && t.owner == me {
			return metaerr.InvalidParameter()
		}
	default:
		if t.owner != "" && t.owner != me {
			return notOwner(pg, metaerr.NotOwnerPass)
		}
		if target == "" {
			target = pg.defaultApp
		}
		// Passing to yourself does not extend control; while the thread
		// is idle it claims it (REFERENCE §0.1).
		if target == me && t.owner == me {
			return metaerr.InvalidParameter()
		}
	}
	if pg.apps[target] == nil {
		return metaerr.IncorrectAppID()
	}
	prev := t.owner
	r.w.grant(t, target)
	r.w.deliverHandover(t, messenger.Event{PassThreadControl: &messenger.PassThreadControl{
		PreviousOwnerAppID: prev, NewOwnerAppID: target, Metadata: md,
	}}, target, r.w.settings.PassWebhookTo == "all")
	return nil
}

func (r *rules) take(caller *pageApp, t *thread, md string) (*messenger.Error, bool) {
	if err := r.checkMetadata(md); err != nil {
		return err, false
	}
	pg, me := t.page, caller.app.id
	switch pg.mode {
	case ModeZeroConfig:
		return metaerr.CRNotEnabled(), false
	case ModeLegacy:
		if !isPrimary(pg, me) {
			return metaerr.Permissions(), false
		}
	default:
		if !caller.takeover {
			return metaerr.Permissions(), false
		}
	}
	if t.owner == me {
		return metaerr.InvalidParameter(), false
	}
	prev := t.owner
	r.w.grant(t, me)
	if prev != "" { // taking an idle thread sends no webhook
		r.w.deliverHandover(t, messenger.Event{TakeThreadControl: &messenger.TakeThreadControl{
			PreviousOwnerAppID: prev, NewOwnerAppID: me, Metadata: md,
		}}, prev, r.w.settings.TakeWebhookTo == "all")
	}
	return nil, true
}

func (r *rules) request(caller *pageApp, t *thread, md string) *messenger.Error {
	if err := r.checkMetadata(md); err != nil {
		return err
	}
	pg, me := t.page, caller.app.id
	switch pg.mode {
	case ModeConversationRouting:
		return metaerr.CREnabled()
	case ModeLegacy:
		if isPrimary(pg, me) {
			return metaerr.InvalidParameter() // the primary takes, it does not ask
		}
		if t.owner == me {
			return metaerr.InvalidParameter()
		}
		r.w.deliverHandover(t, messenger.Event{RequestThreadControl: &messenger.RequestThreadControl{
			RequestedOwnerAppID: me, Metadata: md,
		}}, pg.defaultApp, false)
		return nil
	}
	if t.owner == me {
		return metaerr.InvalidParameter()
	}
	if t.owner == "" {
		// Zero-config: the first app to ask gets an idle thread.
		r.w.grant(t, me)
		r.w.deliverHandover(t, messenger.Event{PassThreadControl: &messenger.PassThreadControl{
			NewOwnerAppID: me, Metadata: md,
		}}, me, false)
		return nil
	}
	r.w.deliverHandover(t, messenger.Event{RequestThreadControl: &messenger.RequestThreadControl{
		RequestedOwnerAppID: me, Metadata: md,
	}}, t.owner, false)
	return nil
}

func (r *rules) release(caller *pageApp, t *thread, md string) *messenger.Error {
	if err := r.checkMetadata(md); err != nil {
		return err
	}
	if t.owner != caller.app.id {
		return notOwner(t.page, metaerr.NotOwnerRelease)
	}
	if t.page.mode == ModeLegacy {
		t.owner = t.page.defaultApp // legacy threads fall back to the primary
		return nil
	}
	t.owner = "" // idle; no webhook is documented for a release
	return nil
}

func (r *rules) extend(caller *pageApp, t *thread, seconds int64) *messenger.Error {
	if t.owner != caller.app.id {
		return notOwner(t.page, metaerr.NotOwnerExtend)
	}
	if seconds <= 0 || seconds > maxExtendSeconds {
		return metaerr.InvalidParameter()
	}
	until := r.w.now().Add(time.Duration(seconds) * time.Second)
	if until.After(t.expires) || r.w.settings.ExtendCanShorten {
		t.expires = until
	}
	return nil
}

// threadOwnerView is what GET thread_owner shows the caller: (owner,
// expiration, visible).
func (r *rules) threadOwnerView(caller *pageApp, t *thread) (body any, err *messenger.Error) {
	pg, me := t.page, caller.app.id
	type owner struct {
		AppID      messenger.ID `json:"app_id,omitempty"`
		Expiration int64        `json:"expiration,omitempty"`
	}
	wrap := func(o owner) any {
		return map[string]any{"data": []any{map[string]any{"thread_owner": o}}}
	}
	if pg.mode == ModeLegacy {
		if !isPrimary(pg, me) && t.owner != me && t.owner != pg.defaultApp {
			return nil, metaerr.SecondaryHidden()
		}
		return wrap(owner{AppID: t.owner}), nil
	}
	if t.owner == "" {
		if r.w.settings.IdleThreadOwnerBody == "object" {
			return map[string]any{}, nil
		}
		return map[string]any{"data": []any{}}, nil
	}
	o := owner{Expiration: t.expires.Unix()}
	if t.owner == me || pg.defaultApp == me {
		o.AppID = t.owner
	}
	return wrap(o), nil
}

// sendAllowed applies the Send API's ownership and window rules (REFERENCE
// §4, §5.1) for a message to the person of t.
func (r *rules) sendAllowed(caller *pageApp, t *thread, tag string, viaOTN bool) *messenger.Error {
	pg, me := t.page, caller.app.id
	switch pg.mode {
	case ModeLegacy:
		// Handover v1: either app may respond.
	case ModeZeroConfig:
		if t.owner != "" && t.owner != me {
			return metaerr.SendNotOwner()
		}
	default:
		if t.owner != "" && t.owner != me {
			return metaerr.SendNotOwner()
		}
		if t.owner == "" && pg.defaultApp != me {
			return metaerr.SendNotOwner() // while idle only the default app may send
		}
	}
	now := r.w.now()
	switch tag {
	case messenger.TagAccountUpdate, messenger.TagConfirmedEventUpdate, messenger.TagPostPurchaseUpdate:
		if messenger.IsRetiredTag(tag, now) {
			return metaerr.InvalidParameter()
		}
		return nil
	}
	if viaOTN {
		return nil
	}
	since := now.Sub(t.lastUserMsg)
	if t.lastUserMsg.IsZero() {
		return outsideWindow(pg)
	}
	switch {
	case since <= messagingWindow:
		return nil
	case (tag == messenger.TagHumanAgent || tag == messenger.TagCustomerFeedback) && since <= humanAgentWindow:
		return nil
	}
	return outsideWindow(pg)
}

// send applies one Send API call.
func (r *rules) send(caller *pageApp, req *messenger.SendRequest) (any, *messenger.Error) {
	pg := caller.page
	psid, viaOTN := req.Recipient.ID, false
	if tok := req.Recipient.OneTimeNotifToken; tok != "" {
		o := r.w.otns[tok]
		if o == nil || o.page != pg.id || o.used || r.w.now().Sub(o.created) > otnLifetime {
			return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) Invalid one_time_notif_token")
		}
		psid, viaOTN = o.psid, true
	}
	if req.Message == nil && req.SenderAction == "" {
		return nil, metaerr.ParamRequired("message")
	}
	if req.Message != nil {
		if req.MessagingType == "" {
			return nil, metaerr.ParamRequired("messaging_type")
		}
		if req.MessagingType == messenger.MessagingTypeMessageTag && req.Tag == "" {
			return nil, metaerr.ParamRequired("tag")
		}
		if utf8.RuneCountInString(req.Message.Text) >= maxTextLen || utf8.RuneCountInString(req.Message.Metadata) >= maxSendMetadata {
			return nil, metaerr.InvalidParameter()
		}
		if req.Message.Text == "" && req.Message.Attachment == nil {
			return nil, metaerr.ParamRequired("message.text or message.attachment")
		}
	}
	t := r.w.thread(pg, psid, false)
	if t == nil {
		return nil, metaerr.NoUser()
	}
	if err := r.media.CheckSend(pg.id, req); err != nil {
		return nil, err
	}
	if err := r.sendAllowed(caller, t, req.Tag, viaOTN); err != nil {
		return nil, err
	}
	if tc := req.ThreadControl; tc != nil {
		if pg.mode != ModeConversationRouting {
			return nil, metaerr.CRNotEnabled()
		}
		// Refuse a pass that cannot happen before anything is sent.
		if tc.ControlType == "pass" {
			target := tc.AppID
			if target == "" {
				target = pg.defaultApp
			}
			if target == caller.app.id {
				return nil, metaerr.InvalidParameter()
			}
			if pg.apps[target] == nil {
				return nil, metaerr.IncorrectAppID()
			}
		}
	}
	if req.Message == nil { // sender action: no message, no echo
		return map[string]any{"recipient_id": psid}, nil
	}
	if viaOTN {
		r.w.otns[req.Recipient.OneTimeNotifToken].used = true
	}
	mid := newID("m_")
	r.w.recordOutbound(t, caller.app, mid, req, false)
	if tc := req.ThreadControl; tc != nil {
		// Send, then change control, as one call. "release" (the default)
		// sends no webhook.
		switch tc.ControlType {
		case "pass":
			if err := r.pass(caller, t, tc.AppID, ""); err != nil {
				return nil, err
			}
		default:
			if t.owner == caller.app.id {
				t.owner = ""
			}
		}
	}
	out := messenger.SendResponse{MessageID: mid}
	if req.Recipient.ID != "" {
		out.RecipientID = psid
	}
	return out, nil
}
