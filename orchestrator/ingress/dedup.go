package ingress

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
)

// Meta sends one copy of each event to every subscribed app, each on its
// own connection (REFERENCE §0.1), and redelivers copies it thinks were
// lost. Two marks follow from that: a copy's key (one app's copy of one
// event), so that each app's copy is delivered once, and an event's key
// (shared by every app's copy), so that what the event says of the person
// is applied once. Both rely on every copy of an event carrying the same
// timestamp and content: Meta makes the event once (standby items are
// identical to messaging items, REFERENCE §2.3).

// copyKey identifies hosted app rcv's copy of an event across Meta's
// redeliveries; ek and shared are the event's eventKey.
func copyKey(pageID string, rcv *topology.App, ev *messenger.Event, ek string, shared bool) string {
	if shared {
		return "c:" + rcv.ID + ":" + ek
	}
	switch k := ev.Kind(); k {
	case messenger.KindPostback:
		if ev.Postback.Mid != "" {
			return "pb:" + rcv.ID + ":" + ev.Postback.Mid
		}
		return "pb:" + rcv.ID + ":" + hashOf(pageID, string(ev.UserID()), strconv.FormatInt(ev.Timestamp, 10), ev.Postback.Title)
	case messenger.KindPassThreadControl, messenger.KindTakeThreadControl, messenger.KindRequestThreadControl:
		return "ho:" + rcv.ID + ":" + hashOf(pageID, string(k), string(ev.UserID()), strconv.FormatInt(ev.Timestamp, 10), string(ev.Raw))
	}
	return "ev:" + rcv.ID + ":" + hashOf(pageID, string(ev.Raw))
}

// eventKey identifies an event every app gets a copy of; ok is false for
// events whose copies differ per app (a postback's payload goes to the
// owner alone; handovers are addressed to one app) or that have no
// person.
func eventKey(pageID string, ev *messenger.Event) (key string, ok bool) {
	switch k := ev.Kind(); k {
	case messenger.KindMessage, messenger.KindEcho:
		if ev.Message.Mid != "" {
			return "m:" + ev.Message.Mid, true
		}
	case messenger.KindRead: // "rd:page:psid:watermark", as fmt's %s and %d wrote it
		return "rd:" + pageID + ":" + string(ev.UserID()) + ":" + strconv.FormatInt(ev.Read.Watermark, 10), true
	case messenger.KindDelivery:
		return "dl:" + pageID + ":" + string(ev.UserID()) + ":" + strconv.FormatInt(ev.Delivery.Watermark, 10), true
	case messenger.KindPostback, messenger.KindUnknown:
		return "", false
	}
	if ev.IsHandover() || ev.UserID() == "" {
		return "", false
	}
	// The same content from the same page is the same event; raw bytes
	// add the parts no key field covers.
	return "ev:" + hashOf(pageID, string(ev.Kind()), string(ev.UserID()), strconv.FormatInt(ev.Timestamp, 10), string(ev.Raw)), true
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
