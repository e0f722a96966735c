package inbox

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/inbox/batonapi"
)

// What a start reads back from Baton. The caps keep a start bounded
// whatever Baton holds: a conversation longer than transcriptCap entries
// shows its newest transcriptCap (and what the inbox kept itself).
const (
	transcriptPage = 200   // entries per transcript call
	transcriptCap  = 2000  // entries a start reads back per conversation
	listPage       = 100   // threads per listing call
	listCap        = 10000 // threads a start looks at per page
)

// rebuild, at start, finds again the conversations the inbox holds at
// Baton but not in its file (lost, or an older copy), then fills every
// conversation it has with what Baton's transcript holds and its
// database does not (what came while the inbox was down, or before it
// kept the conversation). Without a transcript (an older Baton) the
// database alone holds them, as received.
func (in *Inbox) rebuild(ctx context.Context) {
	in.findLost(ctx)
	cs, err := in.assigned()
	if err != nil {
		in.log.Error("conversations not read", zap.Error(err))
		return
	}
	for _, c := range cs {
		entries, err := in.readBack(ctx, c.PageID, c.PSID)
		if err != nil {
			// Not part of it either: a later start reads it whole.
			in.log.Info("transcript not read: the conversation is as the inbox kept it", zap.String("page", c.PageID), zap.Error(err))
		} else if err := in.merge(c.PageID, c.PSID, entries); err != nil {
			in.log.Warn("transcript not merged", zap.String("page", c.PageID), zap.Error(err))
		}
		in.lookAt(c.PageID, c.PSID)
	}
	in.hub.Poke()
}

// findLost lists the threads the inbox owns on each of its pages and
// takes back those its file does not have: an agent sees every
// conversation the inbox holds at Meta, whatever happened to the file.
// Once a start, not every refresh: the listing reads Baton's store.
func (in *Inbox) findLost(ctx context.Context) {
	for _, page := range in.opt.Pages {
		ts, err := in.baton.OwnedThreads(ctx, page, listPage, listCap)
		if err != nil {
			in.log.Warn("the inbox's threads at Baton not listed (in full): a conversation its data lacks stays unseen until its next message",
				zap.String("page", page), zap.Int("listed", len(ts)), zap.Error(err))
		}
		for _, tv := range ts {
			if tv.PSID == "" || tv.Owner != in.opt.App || (tv.PageID != "" && tv.PageID != page) {
				continue
			}
			if err := in.takeBack(page, tv); err != nil {
				in.log.Warn("conversation not taken back", zap.String("page", page), zap.Error(err))
			}
		}
	}
}

// takeBack records a thread Baton says the inbox owns as a conversation
// it has, unless it has it already.
func (in *Inbox) takeBack(page string, tv batonapi.ThreadView) error {
	return in.db.b.Update(func(tx *bolt.Tx) error {
		c, err := getConv(tx, page, tv.PSID)
		if err != nil || (c != nil && c.Assigned) {
			return err
		}
		now := in.clock.Now()
		if c == nil {
			c = &Conversation{PageID: page, PSID: tv.PSID, UpdatedAt: now}
		} else {
			_, _ = addMessage(tx, c, Message{At: now, From: FromEvent, Text: "back in the inbox: Baton says the inbox has it"})
		}
		// HandedAt stays Found until the transcript says when (merge).
		c.Assigned, c.Owner, c.Found, c.HandedAt = true, tv.Owner, now, now
		c.ReturnAt, c.HoldUntil = tv.ReturnAt(), tv.Hold()
		in.log.Info("conversation found again at Baton", zap.String("page", page))
		return putConv(tx, c)
	})
}

// readBack reads a conversation's transcript back until what the inbox
// has, the transcript's start, or transcriptCap entries; oldest first.
func (in *Inbox) readBack(ctx context.Context, page, psid string) ([]batonapi.TranscriptEntry, error) {
	var have map[string]bool
	if err := in.db.b.View(func(tx *bolt.Tx) (err error) { have, err = known(tx, page, psid); return err }); err != nil {
		return nil, err
	}
	return in.baton.TranscriptBack(ctx, page, psid, transcriptPage, transcriptCap, func(es []batonapi.TranscriptEntry) bool {
		return slices.ContainsFunc(es, func(e batonapi.TranscriptEntry) bool { return e.Mid != "" && have[e.Mid] })
	})
}

// known is what the inbox has of a conversation: its messages' ids,
// and its events by time and text (see key).
func known(tx *bolt.Tx, page, psid string) (map[string]bool, error) {
	have := map[string]bool{}
	ms, err := messages(tx, page, psid, 0)
	for _, m := range ms {
		have[key(m)] = true
	}
	return have, err
}

// key tells one message from another: its mid, or an event's time and
// text.
func key(m Message) string {
	if m.Mid != "" {
		return m.Mid
	}
	return m.At.UTC().Format(time.RFC3339Nano) + " " + m.Text
}

// merge adds the transcript's messages the conversation lacks, by mid.
// For a conversation found again at Baton it also adds the handovers to
// the inbox, which it recorded for no other.
func (in *Inbox) merge(page, psid string, entries []batonapi.TranscriptEntry) error {
	return in.db.b.Update(func(tx *bolt.Tx) error {
		c, err := getConv(tx, page, psid)
		if err != nil || c == nil {
			return err
		}
		have, err := known(tx, page, psid)
		if err != nil {
			return err
		}
		var newest *Message
		var handover *batonapi.TranscriptEntry
		for _, e := range entries {
			m, ok := in.transcribed(c, e)
			if !ok {
				continue
			}
			if have[key(m)] {
				continue // what the inbox recorded itself
			}
			have[key(m)] = true
			if m.Mid != "" {
				_ = markSeen(tx, "m:"+m.Mid)
			}
			if m.From == FromEvent {
				handover = &e
			}
			if err := putMessage(tx, c, m); err != nil {
				return err
			}
			if m.From != FromEvent && (newest == nil || !m.At.Before(newest.At)) {
				newest = &m
			}
		}
		if handover != nil && c.HandedAt.Equal(c.Found) {
			// Found again: the newest handover says when and why.
			c.HandedAt, c.Why = handover.At, handover.Metadata
		}
		// The list shows the newest message, here what came while down.
		if newest != nil && (c.Last == "" || !newest.At.Before(c.UpdatedAt)) {
			c.Last, c.LastFrom, c.UpdatedAt = newest.Text, newest.From, newest.At
			if c.Last == "" && len(newest.Attachments) > 0 {
				c.Last = "[" + newest.Attachments[0].Type + "]"
			}
		}
		c.Synced = in.clock.Now()
		return putConv(tx, c)
	})
}

// transcribed is what a transcript entry shows in c, if anything: the
// messages by mid (events without one: the inbox recorded its own), and
// for a conversation found again the handovers to the inbox.
func (in *Inbox) transcribed(c *Conversation, e batonapi.TranscriptEntry) (Message, bool) {
	m := Message{Mid: e.Mid, At: e.At, Text: e.Text}
	for _, a := range e.Attachments {
		m.Attachments = append(m.Attachments, Attachment{Type: a.Type, URL: safeURL(a.URL)})
	}
	switch e.Kind {
	case "message":
		m.From = FromPerson
	case "postback":
		m.From, m.Text = FromPerson, "[tapped] "+e.Text
	case "echo":
		m.From = FromBot
		if e.App == in.opt.App || slices.Contains(in.opt.AgentApps, e.App) {
			m.From = FromAgent // this inbox's agents, or Meta's inboxes
		}
	case "handover":
		return Message{At: e.At, From: FromEvent, Text: handedText(e.Metadata)}, !c.Found.IsZero() && e.To == in.opt.App
	default:
		return Message{}, false
	}
	return m, m.Mid != ""
}
