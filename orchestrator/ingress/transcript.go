package ingress

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/handover"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// The transcript is written here, in the group commit, so that a line of
// the conversation is durable with the 200 that acknowledged it. Meta
// sends one copy of an event per app; the line is written once, for the
// first copy (the event's key, dedup.go), and a postback, whose copies
// differ (the payload goes to the owner alone), by its own mark. Changes
// of control are the ledger's to write (threads.Ledger), whatever caused
// them; a request for control, which changes nothing, is written here.

// transcribe writes the line event ev adds to thread k's transcript, if
// any. first reports whether this is the event's first copy.
func (in *Ingress) transcribe(tx store.Tx, rcv *topology.App, p *topology.Page, k store.ThreadKey, ev *messenger.Event, first bool, now time.Time, out *routed) error {
	e, ok := transcriptEntry(in.d.Topology, k, ev)
	if !ok {
		return nil
	}
	switch ev.Kind() {
	case messenger.KindPostback:
		fresh, err := tx.MarkSeen(postbackLineKey(p.ID, ev), sentAt(ev), now, DedupWindow)
		if err != nil || !fresh {
			return err
		}
	case messenger.KindRequestThreadControl:
		// Addressed to the owner alone: its copy is the event.
	default:
		if !first {
			return nil
		}
	}
	e.At, e.RecordedAt = eventTime(ev.Timestamp, now), now
	if err := tx.AppendTranscript(k, &e); err != nil {
		return fmt.Errorf("transcript of %s: %w", k, err)
	}
	if e.Kind == store.TranscriptMessage && in.d.LearnPerson != nil {
		// A person Baton has not met: their name is asked for after the
		// commit (never inside it: no network in a transaction).
		if _, err := tx.Person(k); errors.Is(err, store.ErrNotFound) {
			out.newPeople = append(out.newPeople, k)
		} else if err != nil {
			return fmt.Errorf("person %s: %w", k, err)
		}
	}
	return nil
}

// postbackLineKey marks the postback's line written, across the apps'
// copies. Meta's mid when it gives one; else what every copy shares.
func postbackLineKey(page string, ev *messenger.Event) string {
	if ev.Postback.Mid != "" {
		return "tpb:" + ev.Postback.Mid
	}
	return "tpb:" + hashOf(page, string(ev.UserID()), strconv.FormatInt(ev.Timestamp, 10), ev.Postback.Title)
}

// transcriptEntry is the line an event makes, without its times; ok is
// false for events that are not a line (receipts, referrals, opt-ins,
// app roles, pass and take, which the ledger writes).
func transcriptEntry(top *topology.Topology, k store.ThreadKey, ev *messenger.Event) (store.TranscriptEntry, bool) {
	var e store.TranscriptEntry
	switch ev.Kind() {
	case messenger.KindMessage:
		m := ev.Message
		e = store.TranscriptEntry{Kind: store.TranscriptMessage, From: k.PSID, Text: m.Text, Mid: m.Mid, Attachments: attachments(m.Attachments)}
		if m.QuickReply != nil {
			e.Payload = m.QuickReply.Payload
		}
	case messenger.KindEcho:
		m := ev.Message
		app := top.Name(string(m.AppID))
		e = store.TranscriptEntry{Kind: store.TranscriptEcho, From: app, App: app, Text: m.Text, Mid: m.Mid,
			Attachments: attachments(m.Attachments), Metadata: m.Metadata, AIGenerated: m.AIGenerated}
	case messenger.KindPostback:
		pb := ev.Postback
		e = store.TranscriptEntry{Kind: store.TranscriptPostback, From: k.PSID, Text: pb.Title, Payload: pb.Payload, Mid: pb.Mid}
	case messenger.KindReaction:
		r := ev.Reaction
		text := r.Emoji
		if text == "" {
			text = r.Reaction
		}
		e = store.TranscriptEntry{Kind: store.TranscriptReaction, From: k.PSID, Text: text, Mid: r.Mid, Event: r.Action}
	case messenger.KindRequestThreadControl:
		rq := ev.RequestThreadControl
		e = store.TranscriptEntry{Kind: store.TranscriptHandover, Event: string(messenger.KindRequestThreadControl),
			From: top.Name(string(rq.RequestedOwnerAppID)), Metadata: rq.Metadata}
	default:
		return e, false
	}
	return e, true
}

func attachments(as []messenger.Attachment) []store.TranscriptAttachment {
	var out []store.TranscriptAttachment
	for _, a := range as {
		out = append(out, store.TranscriptAttachment{Type: a.Type, URL: a.Payload.URL})
	}
	return out
}

// transcribeFiring writes a rule's firing on the thread as a line: what
// the rule decided when the event came (armed, held, refused); what its
// job does later shows as the handover it makes.
func transcribeFiring(tx store.Tx, k store.ThreadKey, f handover.Firing, now time.Time) error {
	e := store.TranscriptEntry{At: now, RecordedAt: now, Kind: store.TranscriptRule, Event: f.Rule, Text: f.Result}
	if err := tx.AppendTranscript(k, &e); err != nil {
		return fmt.Errorf("transcript of %s: %w", k, err)
	}
	return nil
}
