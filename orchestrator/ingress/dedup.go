package ingress

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
)

// dedupKey identifies an event across Meta's redeliveries and across the
// copies each hosted app receives, so that it is applied and delivered
// once. Events addressed to one app (handovers) include that app. Like the
// keys below that include it, the mark's order relies on every copy of an
// event carrying the same timestamp: Meta makes the event once and sends
// it to each app (REFERENCE §2: standby items are identical to messaging
// items).
func dedupKey(pageID string, rcv *topology.App, ev *messenger.Event) string {
	switch k := ev.Kind(); k {
	case messenger.KindMessage, messenger.KindEcho:
		if ev.Message.Mid != "" {
			return "m:" + ev.Message.Mid
		}
	case messenger.KindPostback:
		// Each app's copy is its own: only the owner's carries the payload.
		if ev.Postback.Mid != "" {
			return "pb:" + rcv.ID + ":" + ev.Postback.Mid
		}
		return "pb:" + rcv.ID + ":" + hashOf(pageID, string(ev.UserID()), strconv.FormatInt(ev.Timestamp, 10), ev.Postback.Title)
	case messenger.KindRead:
		return fmt.Sprintf("rd:%s:%s:%d", pageID, ev.UserID(), ev.Read.Watermark)
	case messenger.KindDelivery:
		return fmt.Sprintf("dl:%s:%s:%d", pageID, ev.UserID(), ev.Delivery.Watermark)
	case messenger.KindPassThreadControl, messenger.KindTakeThreadControl, messenger.KindRequestThreadControl:
		return "ho:" + rcv.ID + ":" + hashOf(pageID, string(k), string(ev.UserID()), strconv.FormatInt(ev.Timestamp, 10), string(ev.Raw))
	}
	// Everything else: the same content from the same page is the same
	// event; raw bytes add the parts no key field covers.
	if ev.IsHandover() || ev.Kind() == messenger.KindUnknown || ev.UserID() == "" {
		return "ev:" + rcv.ID + ":" + hashOf(pageID, string(ev.Raw))
	}
	return "ev:" + hashOf(pageID, string(ev.Kind()), string(ev.UserID()), strconv.FormatInt(ev.Timestamp, 10), string(ev.Raw))
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
