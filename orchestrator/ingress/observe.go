package ingress

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// observe applies what one app's copy of an event tells about the
// thread's owner, at the event's time: a handover webhook, the app an echo
// was sent by, the channel the copy came on. The first copy of a person's
// event also records their activity.
func (in *Ingress) observe(tx store.Tx, rcv *topology.App, p *topology.Page, ch messenger.Channel, ev *messenger.Event, th *store.Thread, first bool, now time.Time, out *routed) error {
	at := eventTime(ev.Timestamp, now)
	switch kind := ev.Kind(); kind {
	case messenger.KindPassThreadControl:
		h := ev.PassThreadControl
		return in.observed(tx, p, th, string(h.NewOwnerAppID), string(kind), h.Metadata, at)
	case messenger.KindTakeThreadControl:
		h := ev.TakeThreadControl
		return in.observed(tx, p, th, string(h.NewOwnerAppID), string(kind), h.Metadata, at)
	case messenger.KindEcho:
		return in.observeEcho(tx, p, th, ev, at, now, out)
	case messenger.KindMessage, messenger.KindPostback, messenger.KindReferral, messenger.KindOptin, messenger.KindReaction:
		return in.observePerson(tx, rcv, p, ch, ev, th, first, at, now, out)
	}
	return nil
}

// observed records an owner Meta showed at time at. Meta's webhook for a
// call Baton is making may land before the call returns: the transition
// is then credited to the call.
func (in *Ingress) observed(tx store.Tx, p *topology.Page, th *store.Thread, owner, event, metadata string, at time.Time) error {
	h := store.HistoryEntry{Event: event, By: "meta", Cause: store.CauseWebhook, Metadata: metadata}
	// Evidence of the owner the thread has writes no history (the ledger
	// records a change of owner, or older evidence of another one as
	// ignored), so no call is looked for to credit: most messages are
	// such evidence.
	if owner != th.Owner {
		if it, err := tx.Intent(th.ThreadKey); err == nil && intentExplains(it, owner) {
			h = store.HistoryEntry{Event: it.Op, By: it.By, Cause: it.Cause, Metadata: it.Metadata}
		}
	}
	return in.d.Ledger.Apply(tx, p, th, statemachine.Input{Op: statemachine.OpObserve, Target: owner, At: at}, h)
}

// observeEcho: an echo shows which app sent; a sender that could only
// send as the owner owns the thread now, and the owner's echo is its
// activity.
func (in *Ingress) observeEcho(tx store.Tx, p *topology.Page, th *store.Thread, ev *messenger.Event, at, now time.Time, out *routed) error {
	sender := string(ev.Message.AppID)
	if ev.Message.AIGenerated {
		// Meta AI answered in the inbox: whether that moves control is
		// not documented, so it is no evidence either way; when it comes
		// from an app other than the recorded owner, Baton asks Meta.
		if sender != th.Owner && !threads.Stale(th, at) {
			out.reconcile = append(out.reconcile, th.ThreadKey)
		}
		return nil
	}
	if sender != "" && (sender == th.Owner || echoMeansOwner(p, th.Thread, sender)) {
		// An echo from the owner confirms it (evidence that newer
		// evidence must beat); one from an app that could only send as
		// the owner moves it there.
		if err := in.observed(tx, p, th, sender, string(messenger.KindEcho), "", at); err != nil {
			return err
		}
	}
	if sender != "" && sender == th.Owner {
		th.ActiveAt, th.OwnerActiveAt = now, now // the owner answered
	}
	return nil
}

// observePerson records a person's activity (a new messaging window, more
// time for the owner), a one-time notification token they granted, and
// what the channel of the receiver's copy says about the owner.
func (in *Ingress) observePerson(tx store.Tx, rcv *topology.App, p *topology.Page, ch messenger.Channel, ev *messenger.Event, th *store.Thread, first bool, at, now time.Time, out *routed) error {
	if first {
		if err := in.touch(tx, p, ev, th, at, now); err != nil {
			return err
		}
	}
	switch channelSays(p, th.Thread, rcv, ch) {
	case channelOwner:
		return in.observed(tx, p, th, rcv.ID, channelEvent(ch), "", at)
	case channelAgrees:
		if ch == messenger.ChannelMessaging && p.SM.Mode != statemachine.ZeroConfig {
			// The copy on messaging confirms the owner (or, idle, the
			// default app): older contradicting evidence must not win.
			return in.observed(tx, p, th, th.Owner, channelEvent(ch), "", at)
		}
	case channelContradicts:
		if !threads.Stale(th, at) {
			out.reconcile = append(out.reconcile, th.ThreadKey)
		}
	}
	return nil
}

// touch records a person's activity: a new messaging window, more time
// for the owner, a one-time notification token they granted.
func (in *Ingress) touch(tx store.Tx, p *topology.Page, ev *messenger.Event, th *store.Thread, at, now time.Time) error {
	if o := ev.Optin; o != nil && o.OneTimeNotifToken != "" {
		// The send policy checks its single use and its year of life.
		if err := tx.PutOneTimeToken(store.OneTimeToken{Token: o.OneTimeNotifToken, Page: p.ID, PSID: th.PSID, Payload: o.Payload, Created: now}); err != nil {
			return fmt.Errorf("store one-time token: %w", err)
		}
	}
	// Only forward: a late event or Meta's redelivery of an old one must
	// not move the window back and close it.
	if at.After(th.LastUserMessageAt) {
		th.Thread = statemachine.Touch(p.SM, th.Thread, at)
	}
	th.ActiveAt = now
	return nil
}

// eventTime is when Meta says an event happened (ms), as far as Baton
// believes it: never after Baton's own clock, where it would hold the
// person's window open, or past year 2262 overflow the nanoseconds a
// time takes in the store; Baton's clock when Meta gives no time.
func eventTime(ms int64, now time.Time) time.Time {
	if ms <= 0 || ms > now.UnixMilli() {
		return now
	}
	return time.UnixMilli(ms).UTC()
}

// channelEvent names the evidence of a copy's channel in the history.
func channelEvent(ch messenger.Channel) string {
	switch ch {
	case messenger.ChannelMessaging:
		return "channel_messaging"
	case messenger.ChannelStandby:
		return "channel_standby"
	}
	return "channel_" + string(ch)
}

// intentExplains reports whether a call in flight leads to owner.
func intentExplains(it store.Intent, owner string) bool {
	switch statemachine.Op(it.Op) {
	case statemachine.OpPass:
		return it.Target == owner || (it.Target == "" && owner != "")
	case statemachine.OpTake, statemachine.OpRequest:
		return it.App == owner
	case statemachine.OpRelease:
		return owner == ""
	}
	return false
}

// echoMeansOwner: only the owner (or, while idle, the default app) can
// send, so a sender we did not expect owns the thread now. A Page Inbox
// reply is how Meta's inbox takes control.
func echoMeansOwner(p *topology.Page, th statemachine.Thread, sender string) bool {
	if sender == "" || sender == th.Owner {
		return false
	}
	if sender == string(p.InboxAppID()) {
		return true // Meta's inbox replied: it took the thread
	}
	switch p.SM.Mode {
	case statemachine.ConversationRouting:
		return !(th.Owner == "" && sender == p.SM.Primary)
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
func channelSays(p *topology.Page, th statemachine.Thread, rcv *topology.App, ch messenger.Channel) channelVerdict {
	if p.SM.Mode == statemachine.ZeroConfig {
		return channelAgrees // every app gets messaging
	}
	switch expected := p.ChannelFor(th, rcv); {
	case ch == expected:
		return channelAgrees
	case ch == messenger.ChannelMessaging:
		return channelOwner
	default:
		return channelContradicts
	}
}
