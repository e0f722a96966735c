package ingress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/handover"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
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
	unusable     []recent.Error // events Baton cannot use
	problems     []recent.Error // what a rule could not do
	firings      []handover.Firing
	accepted     int
	duplicates   int
}

// routeEnvelope routes each event of one webhook received by hosted app
// rcv.
func (in *Ingress) routeEnvelope(tx store.Tx, rcv *topology.App, env *messenger.Envelope, now time.Time, out *routed) error {
	var err error
	env.Each(func(en *messenger.Entry, ch messenger.Channel, ev *messenger.Event) {
		if err != nil {
			return
		}
		// Ids are checked before any becomes part of a key.
		if bad := badID(en, ev); bad != "" {
			e := recent.Error{Kind: "webhook", App: rcv.Name, Message: bad + " is not a Meta id (1 to 20 digits): event not used"}
			if isID(en.ID) {
				e.Page = string(en.ID)
			}
			out.unusable = append(out.unusable, e)
			return
		}
		p := in.d.Topology.Page(string(en.ID))
		switch {
		case p == nil:
			out.unusable = append(out.unusable, recent.Error{Kind: "webhook", App: rcv.Name, Page: string(en.ID), Message: "event for a page not in the config"})
		case !p.HasApp(rcv.ID):
			out.unusable = append(out.unusable, recent.Error{Kind: "webhook", App: rcv.Name, Page: p.ID, Message: "app is not configured on this page"})
		case ev.Recipient.ID == "" && ev.Sender == nil:
			out.unusable = append(out.unusable, recent.Error{Kind: "webhook", App: rcv.Name, Page: p.ID, Message: "event without sender or recipient"})
		default:
			err = in.route(tx, rcv, p, ch, ev, now, out)
		}
	})
	return err
}

// route applies one webhook event received by hosted app rcv: drop it if
// seen, journal it, update the thread's owner from what the event tells,
// arm the rules it calls for and enqueue deliveries.
func (in *Ingress) route(tx store.Tx, rcv *topology.App, p *topology.Page, ch messenger.Channel, ev *messenger.Event, now time.Time, out *routed) error {
	if fresh, err := in.journal(tx, rcv, p, ch, ev, now, out); err != nil || !fresh {
		return err
	}
	psid := string(ev.UserID())
	if psid == "" { // app_roles, policy enforcement: for the receiving app alone
		return in.enqueue(tx, out, rcv, p, store.Thread{ThreadKey: store.ThreadKey{Page: p.ID}}, ch, ev, now)
	}
	k := store.ThreadKey{Page: p.ID, PSID: psid}
	th, err := threads.Load(tx, p, k)
	if err != nil {
		return err
	}
	before := th
	if statemachine.Expired(p.SM, th.Thread, now) {
		if err := in.d.Ledger.Apply(tx, p, &th, statemachine.Input{Op: statemachine.OpExpire, At: now},
			store.HistoryEntry{Event: "expire", By: "meta", Cause: store.CauseExpiry}); err != nil {
			return err
		}
	}
	if err := in.observe(tx, rcv, p, ch, ev, &th, now, out); err != nil {
		return err
	}
	if th.Version != before.Version || !th.ActiveAt.Equal(before.ActiveAt) || !th.OwnerActiveAt.Equal(before.OwnerActiveAt) {
		th.UpdatedAt = now
		if err := tx.PutThread(th); err != nil {
			return fmt.Errorf("save thread %s: %w", k, err)
		}
	}
	f, err := in.d.Rules.Arm(tx, p, rcv, ev, &th, now)
	if err != nil {
		return fmt.Errorf("rules of %s: %w", k, err)
	}
	if f.Rule != "" {
		out.firings = append(out.firings, f)
	}
	if f.Problem != nil {
		out.problems = append(out.problems, *f.Problem)
	}
	return in.fanOut(tx, rcv, p, ch, ev, th, now, out)
}

// journal marks the event seen and journals it; a redelivery (or another
// app's copy already routed) is not fresh and stops here.
func (in *Ingress) journal(tx store.Tx, rcv *topology.App, p *topology.Page, ch messenger.Channel, ev *messenger.Event, now time.Time, out *routed) (fresh bool, err error) {
	var sent time.Time // the event's own time orders the marks: see MarkSeen
	if ev.Timestamp > 0 {
		sent = time.UnixMilli(ev.Timestamp)
	}
	fresh, err = tx.MarkSeen(dedupKey(p.ID, rcv, ev), sent, now, DedupWindow)
	if err != nil {
		return false, fmt.Errorf("dedup: %w", err)
	}
	if !fresh {
		out.duplicates++
		return false, nil
	}
	out.accepted++
	j := store.JournalEntry{ReceivedAt: now, App: rcv.Name, Page: p.ID, Channel: string(ch), Event: ev.Raw}
	if err := tx.AppendJournal(&j); err != nil {
		return false, fmt.Errorf("journal: %w", err)
	}
	out.journalSeq, out.journalEvent = j.Seq, ev.Raw
	return true, nil
}

// fanOut enqueues the event's deliveries: handover events to the app that
// received them, a postback to the app it came to, anything else to every
// hosted app on the page, the owner's bot on messaging and the others on
// standby if they want it.
func (in *Ingress) fanOut(tx store.Tx, rcv *topology.App, p *topology.Page, ch messenger.Channel, ev *messenger.Event, th store.Thread, now time.Time, out *routed) error {
	switch ev.Kind() {
	case messenger.KindPassThreadControl, messenger.KindTakeThreadControl, messenger.KindRequestThreadControl, messenger.KindUnknown:
		// Addressed to the app that received it.
		return in.enqueue(tx, out, rcv, p, th, ch, ev, now)
	case messenger.KindPostback:
		// Meta sends the payload to the owner alone, so each copy goes to
		// the app it came to, as it came.
		if ch == messenger.ChannelStandby && !rcv.Standby {
			return nil
		}
		return in.enqueue(tx, out, rcv, p, th, ch, ev, now)
	}
	for _, a := range p.Apps {
		if !a.Hosted {
			continue
		}
		c := p.ChannelFor(th.Thread, a)
		if c == messenger.ChannelStandby && !a.Standby {
			continue
		}
		if err := in.enqueue(tx, out, a, p, th, c, ev, now); err != nil {
			return err
		}
	}
	return nil
}

func (in *Ingress) enqueue(tx store.Tx, out *routed, a *topology.App, p *topology.Page, th store.Thread, ch messenger.Channel, ev *messenger.Event, now time.Time) error {
	d := store.Delivery{
		App: a.Name, Page: p.ID, PSID: th.PSID, Channel: string(ch), Kind: string(ev.Kind()), Event: ev.Raw,
		State: string(th.State), Owner: th.Owner, CreatedAt: now, NextAttempt: now,
		JournalSeq: out.journalSeq, SharesEvent: bytes.Equal(ev.Raw, out.journalEvent),
	}
	if d.State == "" {
		d.State = string(statemachine.Idle)
	}
	if err := tx.Enqueue(&d); err != nil {
		return fmt.Errorf("enqueue for %s: %w", a.Name, err)
	}
	out.deliveries = append(out.deliveries, d)
	return nil
}
