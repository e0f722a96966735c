package ingress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
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
	newPeople    []store.ThreadKey // whose name Baton may ask Meta for
	lines        []store.ThreadKey // threads with a new transcript line
	accepted     int
	duplicates   int
}

// routeEnvelope routes each event of one webhook received by hosted app
// rcv, in the order of Meta's timestamps, whatever order the entries of
// the batch came in.
func (in *Ingress) routeEnvelope(tx store.Tx, rcv *topology.App, env *messenger.Envelope, now time.Time, out *routed) error {
	return in.usable(rcv, env, out, func(p *topology.Page, ch messenger.Channel, ev *messenger.Event) error {
		return in.route(tx, rcv, p, ch, ev, now, out)
	})
}

// usable calls fn for each event of one webhook received by hosted app
// rcv that Baton can use, in the order of Meta's timestamps, whatever
// order the entries of the batch came in; the others it notes in
// out.unusable.
func (in *Ingress) usable(rcv *topology.App, env *messenger.Envelope, out *routed, fn func(p *topology.Page, ch messenger.Channel, ev *messenger.Event) error) error {
	type item struct {
		en *messenger.Entry
		ch messenger.Channel
		ev *messenger.Event
	}
	var items []item
	env.Each(func(en *messenger.Entry, ch messenger.Channel, ev *messenger.Event) {
		items = append(items, item{en, ch, ev})
	})
	sort.SliceStable(items, func(i, j int) bool { return items[i].ev.Timestamp < items[j].ev.Timestamp })
	for _, it := range items {
		en, ch, ev := it.en, it.ch, it.ev
		// Ids are checked before any becomes part of a key.
		if bad := badID(en, ev); bad != "" {
			e := recent.Error{Kind: "webhook", App: rcv.Name, Message: bad + " is not a Meta id (1 to 20 digits): event not used"}
			if isID(en.ID) {
				e.Page = string(en.ID)
			}
			out.unusable = append(out.unusable, e)
			continue
		}
		p := in.d.Topology.Page(string(en.ID))
		switch {
		case p == nil:
			out.unusable = append(out.unusable, recent.Error{Kind: "webhook", App: rcv.Name, Page: string(en.ID), Message: "event for a page not in the config"})
		case p.Instagram != env.IsInstagram():
			out.unusable = append(out.unusable, recent.Error{Kind: "webhook", App: rcv.Name, Page: p.ID, Message: fmt.Sprintf("a webhook with object %q for a page whose platform is not that", env.Object)})
		case !p.HasApp(rcv.ID):
			out.unusable = append(out.unusable, recent.Error{Kind: "webhook", App: rcv.Name, Page: p.ID, Message: "app is not configured on this page"})
		case ev.Recipient.ID == "" && ev.Sender == nil:
			out.unusable = append(out.unusable, recent.Error{Kind: "webhook", App: rcv.Name, Page: p.ID, Message: "event without sender or recipient"})
		default:
			if err := fn(p, ch, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// route applies one copy of a webhook event, the one hosted app rcv
// received: drop it if rcv saw it before, journal it, merge what it shows
// about the thread's owner into the record, and deliver it to rcv's bot
// on the channel Meta used for it. The first copy of an event (whichever
// app's arrives first) also records the person's activity and arms the
// rules it calls for.
func (in *Ingress) route(tx store.Tx, rcv *topology.App, p *topology.Page, ch messenger.Channel, ev *messenger.Event, now time.Time, out *routed) error {
	// The event's key (shared by every app's copy), made once for both
	// marks.
	ek, shared := eventKey(p.ID, ev)
	if fresh, err := in.journal(tx, rcv, p, ch, ev, copyKey(p.ID, rcv, ev, ek, shared), now, out); err != nil || !fresh {
		return err
	}
	psid := string(ev.UserID())
	if psid == "" { // app_roles, policy enforcement: for the receiving app alone
		return in.enqueue(tx, out, rcv, p, store.Thread{ThreadKey: store.ThreadKey{Page: p.ID}}, ch, ev, now)
	}
	first, err := in.firstCopy(tx, ev, ek, shared, now)
	if err != nil {
		return err
	}
	k := store.ThreadKey{Page: p.ID, PSID: psid}
	// The line first: a change of control the event shows comes after it.
	if err := in.transcribe(tx, rcv, p, k, ev, first, now, out); err != nil {
		return err
	}
	th, err := threads.Load(tx, p, k)
	if err != nil {
		return err
	}
	before := th
	if err := in.d.Ledger.ExpireLapsed(tx, p, &th, now); err != nil {
		return err
	}
	if err := in.observe(tx, rcv, p, ch, ev, &th, first, now, out); err != nil {
		return err
	}
	if th.Version != before.Version || !th.ActiveAt.Equal(before.ActiveAt) || !th.OwnerActiveAt.Equal(before.OwnerActiveAt) || !th.EvidenceAt.Equal(before.EvidenceAt) {
		th.UpdatedAt = now
		if err := tx.PutThread(th); err != nil {
			return fmt.Errorf("save thread %s: %w", k, err)
		}
	}
	if first {
		f, err := in.d.Rules.Arm(tx, p, rcv, ev, &th, now)
		if err != nil {
			return fmt.Errorf("rules of %s: %w", k, err)
		}
		if f.Rule != "" {
			out.firings = append(out.firings, f)
			if err := transcribeFiring(tx, k, f, now); err != nil {
				return err
			}
			out.lines = append(out.lines, k)
		}
		if f.Problem != nil {
			out.problems = append(out.problems, *f.Problem)
		}
	}
	// Meta decides routing: the copy goes to the app it came to, on the
	// channel it came on, whatever Baton's record says.
	if ch == messenger.ChannelStandby && !rcv.Standby {
		return nil
	}
	return in.enqueue(tx, out, rcv, p, th, ch, ev, now)
}

// journal marks rcv's copy of the event (key) seen and journals it; a
// redelivery of the copy is not fresh and stops here.
func (in *Ingress) journal(tx store.Tx, rcv *topology.App, p *topology.Page, ch messenger.Channel, ev *messenger.Event, key string, now time.Time, out *routed) (fresh bool, err error) {
	fresh, err = tx.MarkSeen(key, sentAt(ev), now, DedupWindow)
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

// firstCopy reports whether this is the first copy of the event (of
// key, when shared by every app's copy) to reach Baton, of all the hosted
// apps' copies: what the event says of the person (activity, rules) is
// applied once.
func (in *Ingress) firstCopy(tx store.Tx, ev *messenger.Event, key string, shared bool, now time.Time) (bool, error) {
	if !shared {
		return true, nil // addressed to one app: its copy is the event
	}
	first, err := tx.MarkSeen(key, sentAt(ev), now, DedupWindow)
	if err != nil {
		return false, fmt.Errorf("dedup: %w", err)
	}
	return first, nil
}

// sentAt is when the event happened by Meta's clock (zero when unknown),
// the same on every copy and redelivery: dedup marks are laid out in its
// order (see MarkSeen).
func sentAt(ev *messenger.Event) time.Time {
	if ev.Timestamp > 0 {
		return time.UnixMilli(ev.Timestamp)
	}
	return time.Time{}
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
