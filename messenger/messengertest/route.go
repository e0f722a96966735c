package messengertest

import (
	"encoding/json"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/hooks"
)

// How an event on a thread becomes webhooks: which apps get a copy, on
// which channel, stamped and encoded as Meta does. Each method runs with
// w.mu held and only queues; the webhook sender posts later.

// channelFor tells on which channel an app gets the thread's events.
func channelFor(t *thread, pa *pageApp) messenger.Channel {
	switch t.page.mode {
	case ModeZeroConfig:
		return messenger.ChannelMessaging
	case ModeLegacy:
		if t.owner == pa.app.id {
			return messenger.ChannelMessaging
		}
		return messenger.ChannelStandby
	}
	if t.owner == pa.app.id || (t.owner == "" && t.page.defaultApp == pa.app.id) {
		return messenger.ChannelMessaging
	}
	return messenger.ChannelStandby
}

// route sends a person's event, or an echo, to every subscribed app on the
// page: the owner on messaging, the others on standby.
func (w *world) route(t *thread, ev messenger.Event, field string) {
	w.routeAs(t, ev, field, false)
}

// routeAs is route; aiGenerated marks an echo as a Meta AI reply.
func (w *world) routeAs(t *thread, ev messenger.Event, field string, aiGenerated bool) {
	w.stamp(t, &ev)
	kind := ev.Kind()
	for _, pa := range t.page.connectedApps() {
		if pa.app.callback == "" {
			continue
		}
		ch := channelFor(t, pa)
		e := ev
		if ch == messenger.ChannelMessaging {
			if !pa.subscribed[field] {
				continue
			}
		} else {
			if !pa.subscribed["standby"] || (kind == messenger.KindEcho && !pa.subscribed[field]) {
				continue
			}
			if e.Postback != nil && e.Postback.Payload != "" {
				// Only the app that sent the button gets its payload.
				pb := *e.Postback
				pb.Payload = ""
				e.Postback = &pb
			}
		}
		w.enqueue(t.page, pa, ch, &e, aiGenerated)
	}
}

// deliverTo sends a messaging_handovers event to the named apps on the
// messaging channel.
func (w *world) deliverTo(pg *page, appIDs []messenger.ID, ev messenger.Event, field string) {
	for _, id := range appIDs {
		pa := pg.apps[id]
		if pa == nil || pa.app.callback == "" || !pa.subscribed[field] {
			continue
		}
		w.enqueue(pg, pa, messenger.ChannelMessaging, &ev, false)
	}
}

// deliverHandover sends a handover event to its recipients, or to every
// connected app when the setting says "all".
func (w *world) deliverHandover(t *thread, ev messenger.Event, to messenger.ID, all bool) {
	ev = w.handoverEvent(t, ev)
	ids := []messenger.ID{to}
	if all {
		ids = ids[:0]
		for _, pa := range t.page.connectedApps() {
			ids = append(ids, pa.app.id)
		}
	}
	w.deliverTo(t.page, ids, ev, "messaging_handovers")
}

func (w *world) handoverEvent(t *thread, ev messenger.Event) messenger.Event {
	w.stamp(t, &ev)
	return ev
}

// stamp fills sender, recipient and timestamp as Meta does for the kind of
// event: echoes come from the page to the person, all else the reverse.
func (w *world) stamp(t *thread, ev *messenger.Event) {
	if ev.Timestamp == 0 {
		ev.Timestamp = w.now().UnixMilli()
	}
	if ev.Message != nil && ev.Message.IsEcho {
		ev.Sender = &messenger.Party{ID: t.page.id}
		ev.Recipient = messenger.Party{ID: t.psid}
		return
	}
	ev.Sender = &messenger.Party{ID: t.psid}
	ev.Recipient = messenger.Party{ID: t.page.id}
}

func (w *world) enqueue(pg *page, pa *pageApp, ch messenger.Channel, ev *messenger.Event, aiGenerated bool) {
	entry := hooks.WireEntry{ID: pg.id, Time: w.now().UnixMilli()}
	raw := hooks.EncodeEvent(ev, aiGenerated)
	if ch == messenger.ChannelStandby {
		entry.Standby = []json.RawMessage{raw}
	} else {
		entry.Messaging = []json.RawMessage{raw}
	}
	target := hooks.Target{Name: pa.app.name, ID: pa.app.id, Callback: pa.app.callback, Secret: pa.app.secret}
	w.out.Enqueue(hooks.Queued{App: target, Object: pg.object(), Entry: entry, Channel: ch, Kind: ev.Kind()})
}

// recordOutbound stores a page message and routes its echo; aiGenerated
// marks a Meta AI reply.
func (w *world) recordOutbound(t *thread, from *app, mid string, req *messenger.SendRequest, aiGenerated bool) {
	m := req.Message
	t.messages = append(t.messages, ThreadMessage{
		Mid: mid, At: w.now(), Direction: "out", AppID: from.id, App: from.name,
		Text: m.Text, Metadata: m.Metadata, Tag: req.Tag, HasAttach: m.Attachment != nil, AIGenerated: aiGenerated,
	})
	if req.PersonaID != "" && w.personaName != nil {
		t.messages[len(t.messages)-1].Persona = w.personaName(t.page.id, req.PersonaID)
	}
	echo := &messenger.Message{Mid: mid, IsEcho: true, AppID: from.id, Metadata: m.Metadata, Text: m.Text}
	if a := m.Attachment; a != nil {
		var pl messenger.AttachmentPayload
		_ = json.Unmarshal(a.Payload, &pl)
		echo.Attachments = []messenger.Attachment{{Type: a.Type, Payload: pl}}
	}
	w.routeAs(t, messenger.Event{Message: echo}, "message_echoes", aiGenerated)
}
