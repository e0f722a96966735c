package orchestrator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// routed collects what one ingress transaction decided, for the work done
// after it commits. The transaction may run more than once, so it is reset
// at the start of each run.
type routed struct {
	journalSeq   uint64          // of the event being routed
	journalEvent json.RawMessage // its bytes
	deliveries   []store.Delivery
	reconcile    []store.ThreadKey
	unusable     []RecentError
	firings      []firing
	accepted     int
	duplicates   int
}

// route applies one webhook event received by hosted app rcv: drop it if
// seen, journal it, update the thread's owner from what the event tells,
// and enqueue deliveries. It runs inside the ingress transaction.
func (o *Orchestrator) route(tx store.Tx, rcv *app, p *page, ch messenger.Channel, ev *messenger.Event, now time.Time, out *routed) error {
	var sent time.Time // the event's own time orders the marks: see MarkSeen
	if ev.Timestamp > 0 {
		sent = time.UnixMilli(ev.Timestamp)
	}
	fresh, err := tx.MarkSeen(dedupKey(p.id, rcv, ev), sent, now, DedupWindow)
	if err != nil {
		return fmt.Errorf("dedup: %w", err)
	}
	if !fresh {
		out.duplicates++
		return nil
	}
	out.accepted++
	j := store.JournalEntry{ReceivedAt: now, App: rcv.name, Page: p.id, Channel: string(ch), Event: ev.Raw}
	if err := tx.AppendJournal(&j); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	out.journalSeq, out.journalEvent = j.Seq, ev.Raw
	kind := ev.Kind()
	psid := string(ev.UserID())
	if psid == "" { // app_roles, policy enforcement: for the receiving app alone
		return o.enqueue(tx, out, rcv, p, store.Thread{ThreadKey: store.ThreadKey{Page: p.id}}, ch, kind, ev.Raw, now)
	}
	k := store.ThreadKey{Page: p.id, PSID: psid}
	th, err := o.loadThread(tx, p, k)
	if err != nil {
		return err
	}
	before, activeBefore, ownerActiveBefore := th.Version, th.ActiveAt, th.OwnerActiveAt
	if statemachine.Expired(p.sm, th.Thread, now) {
		if err := o.apply(tx, p, &th, statemachine.Input{Op: statemachine.OpExpire, At: now}, store.HistoryEntry{Event: "expire", By: "meta", Cause: store.CauseExpiry}); err != nil {
			return err
		}
	}
	observe := func(owner, event, metadata string) error {
		h := store.HistoryEntry{Event: event, By: "meta", Cause: store.CauseWebhook, Metadata: metadata}
		// Meta's webhook for a call Baton is making may land before the
		// call returns: credit the transition to the call.
		if in, err := tx.Intent(k); err == nil && intentExplains(in, owner) {
			h = store.HistoryEntry{Event: in.Op, By: in.By, Cause: in.Cause, Metadata: in.Metadata}
		}
		return o.apply(tx, p, &th, statemachine.Input{Op: statemachine.OpObserve, Target: owner, At: now}, h)
	}
	switch kind {
	case messenger.KindPassThreadControl:
		h := ev.PassThreadControl
		err = observe(string(h.NewOwnerAppID), string(kind), h.Metadata)
	case messenger.KindTakeThreadControl:
		h := ev.TakeThreadControl
		err = observe(string(h.NewOwnerAppID), string(kind), h.Metadata)
	case messenger.KindEcho:
		sender := string(ev.Message.AppID)
		if o.echoMeansOwner(p, th.Thread, sender) {
			err = observe(sender, string(kind), "")
		}
		if sender != "" && sender == th.Owner {
			th.ActiveAt, th.OwnerActiveAt = now, now // the owner answered
		}
	case messenger.KindMessage, messenger.KindPostback, messenger.KindReferral, messenger.KindOptin, messenger.KindReaction:
		if o := ev.Optin; o != nil && o.OneTimeNotifToken != "" {
			// The send policy checks its single use and its year of life.
			if err := tx.PutOneTimeToken(store.OneTimeToken{Token: o.OneTimeNotifToken, Page: p.id, PSID: psid, Payload: o.Payload, Created: now}); err != nil {
				return fmt.Errorf("store one-time token: %w", err)
			}
		}
		at := now
		if ev.Timestamp > 0 {
			at = time.UnixMilli(ev.Timestamp).UTC()
		}
		th.Thread = statemachine.Touch(p.sm, th.Thread, at)
		th.ActiveAt = now
		switch o.channelSays(p, th.Thread, rcv, ch) {
		case channelOwner:
			err = observe(rcv.id, "channel_"+string(ch), "")
		case channelContradicts:
			out.reconcile = append(out.reconcile, k)
		}
	}
	if err != nil {
		return err
	}
	if th.Version != before || !th.ActiveAt.Equal(activeBefore) || !th.OwnerActiveAt.Equal(ownerActiveBefore) {
		th.UpdatedAt = now
		if err := tx.PutThread(th); err != nil {
			return fmt.Errorf("save thread %s: %w", k, err)
		}
	}
	if err := o.routeRules(tx, p, rcv, ev, &th, now, out); err != nil {
		return fmt.Errorf("rules of %s: %w", k, err)
	}
	switch kind {
	case messenger.KindPassThreadControl, messenger.KindTakeThreadControl, messenger.KindRequestThreadControl, messenger.KindUnknown:
		// Addressed to the app that received it.
		return o.enqueue(tx, out, rcv, p, th, ch, kind, ev.Raw, now)
	case messenger.KindPostback:
		// Meta sends the payload to the owner alone, so each copy goes to
		// the app it came to, as it came.
		if ch == messenger.ChannelStandby && !rcv.standby {
			return nil
		}
		return o.enqueue(tx, out, rcv, p, th, ch, kind, ev.Raw, now)
	}
	for _, a := range p.apps {
		if !a.hosted {
			continue
		}
		c := channelFor(p, th.Thread, a)
		if c == messenger.ChannelStandby && !a.standby {
			continue
		}
		if err := o.enqueue(tx, out, a, p, th, c, kind, ev.Raw, now); err != nil {
			return err
		}
	}
	return nil
}

// intentExplains reports whether a call in flight leads to owner.
func intentExplains(in store.Intent, owner string) bool {
	switch statemachine.Op(in.Op) {
	case statemachine.OpPass:
		return in.Target == owner || (in.Target == "" && owner != "")
	case statemachine.OpTake, statemachine.OpRequest:
		return in.App == owner
	case statemachine.OpRelease:
		return owner == ""
	}
	return false
}

func (o *Orchestrator) enqueue(tx store.Tx, out *routed, a *app, p *page, th store.Thread, ch messenger.Channel, kind messenger.Kind, raw json.RawMessage, now time.Time) error {
	d := store.Delivery{
		App: a.name, Page: p.id, PSID: th.PSID, Channel: string(ch), Kind: string(kind), Event: raw,
		State: string(th.State), Owner: th.Owner, CreatedAt: now, NextAttempt: now,
		JournalSeq: out.journalSeq, SharesEvent: bytes.Equal(raw, out.journalEvent),
	}
	if d.State == "" {
		d.State = string(statemachine.Idle)
	}
	if err := tx.Enqueue(&d); err != nil {
		return fmt.Errorf("enqueue for %s: %w", a.name, err)
	}
	out.deliveries = append(out.deliveries, d)
	return nil
}

// loadThread reads a thread, or starts the record of a new one: idle, or
// owned by the primary on a legacy page.
func (o *Orchestrator) loadThread(tx store.ReadTx, p *page, k store.ThreadKey) (store.Thread, error) {
	th, err := tx.Thread(k)
	if errors.Is(err, store.ErrNotFound) {
		th = store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Idle}}
		if p.sm.Mode == statemachine.Legacy && p.sm.Primary != "" {
			th.State, th.Owner = statemachine.Primary, p.sm.Primary
		}
		return th, nil
	}
	if err != nil {
		return th, fmt.Errorf("load thread %s: %w", k, err)
	}
	return th, nil
}

// apply runs the state machine and records the transition in the history
// when the owner changed.
func (o *Orchestrator) apply(tx store.Tx, p *page, th *store.Thread, in statemachine.Input, h store.HistoryEntry) error {
	res, err := statemachine.Apply(p.sm, th.Thread, in)
	if err != nil {
		return err
	}
	th.Thread = res.Thread
	if !res.Changed {
		return nil
	}
	h.At, h.From, h.To = in.At, res.From, res.To
	o.metrics.transits.WithLabelValues(h.Cause).Inc()
	if err := tx.AppendHistory(th.ThreadKey, h); err != nil {
		return fmt.Errorf("history of %s: %w", th.ThreadKey, err)
	}
	return o.afterTransition(tx, p, th, in.At)
}

// echoMeansOwner: an echo shows which app sent; only the owner (or, while
// idle, the default app) can send, so a sender we did not expect owns the
// thread now. A Page Inbox reply is how Meta's inbox takes control.
func (o *Orchestrator) echoMeansOwner(p *page, th statemachine.Thread, sender string) bool {
	if sender == "" || sender == th.Owner {
		return false
	}
	if sender == string(messenger.PageInboxAppID) {
		return true
	}
	switch p.sm.Mode {
	case statemachine.ConversationRouting:
		return !(th.Owner == "" && sender == p.sm.Primary)
	case statemachine.ZeroConfig:
		return th.Owner != "" // while idle anyone may send
	}
	return false // legacy: either app may send
}

type channelVerdict int

const (
	channelAgrees      channelVerdict = iota
	channelOwner                      // the channel shows the receiver owns the thread
	channelContradicts                // it shows the receiver does not, though we thought so
)

// channelSays reads ownership from the channel a person's event came on.
func (o *Orchestrator) channelSays(p *page, th statemachine.Thread, rcv *app, ch messenger.Channel) channelVerdict {
	if p.sm.Mode == statemachine.ZeroConfig {
		return channelAgrees // every app gets messaging
	}
	expected := channelFor(p, th, rcv)
	switch {
	case ch == expected:
		return channelAgrees
	case ch == messenger.ChannelMessaging:
		return channelOwner
	default:
		return channelContradicts
	}
}

// channelFor is where Meta would send a thread's events for app a.
func channelFor(p *page, th statemachine.Thread, a *app) messenger.Channel {
	switch {
	case p.sm.Mode == statemachine.ZeroConfig,
		th.Owner == a.id,
		th.Owner == "" && p.sm.Mode == statemachine.ConversationRouting && a.id == p.sm.Primary:
		return messenger.ChannelMessaging
	}
	return messenger.ChannelStandby
}

// dedupKey identifies an event across Meta's redeliveries and across the
// copies each hosted app receives, so that it is applied and delivered
// once. Events addressed to one app (handovers) include that app. Like the
// keys below that include it, the mark's order relies on every copy of an
// event carrying the same timestamp: Meta makes the event once and sends
// it to each app (REFERENCE §2: standby items are identical to messaging
// items).
func dedupKey(pageID string, rcv *app, ev *messenger.Event) string {
	switch k := ev.Kind(); k {
	case messenger.KindMessage, messenger.KindEcho:
		if ev.Message.Mid != "" {
			return "m:" + ev.Message.Mid
		}
	case messenger.KindPostback:
		// Each app's copy is its own: only the owner's carries the payload.
		if ev.Postback.Mid != "" {
			return "pb:" + rcv.id + ":" + ev.Postback.Mid
		}
		return "pb:" + rcv.id + ":" + hashOf(pageID, string(ev.UserID()), strconv.FormatInt(ev.Timestamp, 10), ev.Postback.Title)
	case messenger.KindRead:
		return fmt.Sprintf("rd:%s:%s:%d", pageID, ev.UserID(), ev.Read.Watermark)
	case messenger.KindDelivery:
		return fmt.Sprintf("dl:%s:%s:%d", pageID, ev.UserID(), ev.Delivery.Watermark)
	case messenger.KindPassThreadControl, messenger.KindTakeThreadControl, messenger.KindRequestThreadControl:
		return "ho:" + rcv.id + ":" + hashOf(pageID, string(k), string(ev.UserID()), strconv.FormatInt(ev.Timestamp, 10), string(ev.Raw))
	}
	// Everything else: the same content from the same page is the same
	// event; raw bytes add the parts no key field covers.
	if ev.IsHandover() || ev.Kind() == messenger.KindUnknown || ev.UserID() == "" {
		return "ev:" + rcv.id + ":" + hashOf(pageID, string(ev.Raw))
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
