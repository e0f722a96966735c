package inbox

import (
	"encoding/json"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
)

// Who said a message.
const (
	FromPerson = "person" // the person writing to the page
	FromBot    = "bot"    // a bot's reply (another app's echo)
	FromAgent  = "agent"  // an agent's reply, from this inbox or Meta's
	FromNote   = "note"   // an agent's private note: never sent
	FromEvent  = "event"  // a handover or a rule, in line
)

// Conversation is one person's thread as the inbox keeps it.
type Conversation struct {
	PageID string `json:"page_id"`
	PSID   string `json:"psid"`
	// Assigned: Baton says the inbox owns the thread and nobody pressed
	// Done. Only assigned conversations are listed.
	Assigned  bool      `json:"assigned"`
	Owner     string    `json:"owner"` // Baton's owner, by app name
	Why       string    `json:"why,omitempty"`
	HandedAt  time.Time `json:"handed_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
	// ClaimedBy is the agent who has it; empty: open to everyone.
	ClaimedBy string    `json:"claimed_by,omitempty"`
	ClaimedAt time.Time `json:"claimed_at,omitzero"`
	// The person, from the User Profile API through Baton.
	Name      string    `json:"name,omitempty"`
	Picture   string    `json:"picture,omitempty"`
	ProfileAt time.Time `json:"profile_at,omitzero"`
	LastSeq   uint64    `json:"last_seq"`
	Last      string    `json:"last,omitempty"`
	LastFrom  string    `json:"last_from,omitempty"`
	// ReturnAt is when Baton's return rule would hand the conversation
	// back (its pending job), HoldUntil how long the inbox holds it off:
	// both as Baton last said.
	ReturnAt  time.Time `json:"return_at,omitzero"`
	HoldUntil time.Time `json:"hold_until,omitzero"`
	// Synced is when it was last filled from Baton's transcript.
	Synced time.Time `json:"synced,omitzero"`
	// Found is when the inbox found it again at Baton, owned by the
	// inbox but missing from (or not assigned in) its file: at a start's
	// listing, or from a delivery that says the inbox owns the thread
	// before any handover reached it. The transcript then says when and
	// why it was handed over (restart.go).
	Found time.Time `json:"found,omitzero"`
}

// Attachment is a file in a message: an image is shown, the rest linked.
type Attachment struct {
	Type string `json:"type"`
	URL  string `json:"url,omitempty"`
}

// Message is one message, note or event of a conversation.
type Message struct {
	Seq         uint64       `json:"seq"`
	Mid         string       `json:"mid,omitempty"`
	At          time.Time    `json:"at"`
	From        string       `json:"from"`
	Agent       string       `json:"agent,omitempty"` // the agent's name, for replies and notes sent here
	Text        string       `json:"text"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// apply records one delivery from Baton and reports the conversation it
// touched, nil for a repeat.
func (in *Inbox) apply(d *adapters.Delivery, ev *messenger.Event) (*Conversation, error) {
	var out *Conversation
	err := in.db.b.Update(func(tx *bolt.Tx) error {
		out = nil
		if !markSeen(tx, "d:"+d.ID) {
			return nil
		}
		c, err := getConv(tx, d.PageID, d.PSID)
		if err != nil {
			return err
		}
		if c == nil {
			c = &Conversation{PageID: d.PageID, PSID: d.PSID}
		}
		at := in.clock.Now()
		if ev.Timestamp > 0 {
			at = time.UnixMilli(ev.Timestamp)
		}
		c.UpdatedAt = at
		c.Owner = d.Thread.Owner
		if m, ok := in.message(ev, at); ok {
			if _, err := addMessage(tx, c, m); err != nil {
				return err
			}
		}
		if ev.Kind() == messenger.KindPassThreadControl && string(ev.PassThreadControl.NewOwnerAppID) == in.opt.AppID {
			c.Assigned, c.HandedAt, c.Why = true, at, ev.PassThreadControl.Metadata
		}
		// Baton's view of the owner settles it: a thread the return rule
		// or another app took away leaves the list with its next event.
		switch {
		case d.Thread.Owner == in.opt.App && !c.Assigned:
			// Owned without a handover seen here (the file was lost and
			// Baton redelivered before the start read it back): found.
			c.Assigned, c.HandedAt, c.Found = true, at, at
		case d.Thread.Owner != in.opt.App && c.Assigned:
			in.leftLocked(tx, c, at, "now with "+ownerName(d.Thread.Owner))
		}
		out = c
		return putConv(tx, c)
	})
	return out, err
}

// leftLocked records that the conversation left the inbox.
func (in *Inbox) leftLocked(tx *bolt.Tx, c *Conversation, at time.Time, why string) {
	c.Assigned, c.ClaimedBy, c.ReturnAt, c.HoldUntil = false, "", time.Time{}, time.Time{}
	_, _ = addMessage(tx, c, Message{At: at, From: FromEvent, Text: "left the inbox: " + why})
}

func ownerName(o string) string {
	if o == "" {
		return "nobody (idle)"
	}
	return o
}

// message is what an event shows in the conversation, if anything.
func (in *Inbox) message(ev *messenger.Event, at time.Time) (Message, bool) {
	switch ev.Kind() {
	case messenger.KindMessage:
		return Message{Mid: ev.Message.Mid, At: at, From: FromPerson, Text: ev.Message.Text, Attachments: attachments(ev.Message)}, true
	case messenger.KindEcho:
		from := FromBot
		if id := ev.Message.AppID; string(id) == in.opt.AppID || id == messenger.PageInboxAppID || id == messenger.InstagramInboxAppID {
			from = FromAgent
		}
		return Message{Mid: ev.Message.Mid, At: at, From: from, Text: ev.Message.Text, Attachments: attachments(ev.Message)}, true
	case messenger.KindPostback:
		return Message{Mid: ev.Postback.Mid, At: at, From: FromPerson, Text: "[tapped] " + ev.Postback.Title}, true
	case messenger.KindPassThreadControl:
		if string(ev.PassThreadControl.NewOwnerAppID) == in.opt.AppID {
			return Message{At: at, From: FromEvent, Text: handedText(ev.PassThreadControl.Metadata)}, true
		}
	}
	return Message{}, false
}

// handedText is the event line of a handover to the inbox.
func handedText(why string) string {
	if why == "" {
		why = "handed to the inbox"
	}
	return "handed to the inbox: " + why
}

func attachments(m *messenger.Message) []Attachment {
	var out []Attachment
	for _, a := range m.Attachments {
		out = append(out, Attachment{Type: a.Type, URL: safeURL(a.Payload.URL)})
	}
	return out
}

// safeURL keeps http(s) URLs only: a javascript: link must never reach
// an agent's page.
func safeURL(u string) string {
	if len(u) > 8 && (u[:8] == "https://" || u[:7] == "http://") {
		return u
	}
	return ""
}

// ConversationView is a conversation as an agent's page lists it.
type ConversationView struct {
	Conversation
	Unread int `json:"unread"`
	// Warn: Baton will hand it back soon and nobody holds it.
	Warn bool `json:"warn"`
}

// list answers the assigned conversations, newest handover first, with
// agent's unread counts.
func (in *Inbox) list(agent string) ([]ConversationView, error) {
	out := []ConversationView{}
	err := in.db.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bConvs).ForEach(func(_, v []byte) error {
			var c Conversation
			if json.Unmarshal(v, &c) != nil || !c.Assigned {
				return nil
			}
			out = append(out, ConversationView{Conversation: c, Unread: unread(tx, agent, &c)})
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].HandedAt.After(out[j].HandedAt) })
	return out, err
}

// assigned lists the conversations the inbox has, for the background
// work.
func (in *Inbox) assigned() ([]Conversation, error) {
	var out []Conversation
	err := in.db.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bConvs).ForEach(func(_, v []byte) error {
			var c Conversation
			if json.Unmarshal(v, &c) == nil && c.Assigned {
				out = append(out, c)
			}
			return nil
		})
	})
	return out, err
}

// detail reads one conversation with its messages, ordered by time (a
// transcript fills in older ones after a restart).
func (in *Inbox) detail(page, psid string) (*Conversation, []Message, error) {
	var c *Conversation
	var ms []Message
	err := in.db.b.View(func(tx *bolt.Tx) error {
		var err error
		if c, err = getConv(tx, page, psid); err != nil || c == nil {
			return err
		}
		ms, err = messages(tx, page, psid, 0)
		return err
	})
	if err == nil && c == nil {
		err = errNoConversation
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].At.Before(ms[j].At) })
	return c, ms, err
}

// update changes one conversation the inbox has.
func (in *Inbox) update(page, psid string, fn func(tx *bolt.Tx, c *Conversation) error) (*Conversation, error) {
	var out *Conversation
	err := in.db.b.Update(func(tx *bolt.Tx) error {
		c, err := getConv(tx, page, psid)
		if err != nil {
			return err
		}
		if c == nil {
			return errNoConversation
		}
		if err := fn(tx, c); err != nil {
			return err
		}
		out = c
		return putConv(tx, c)
	})
	if err == nil {
		in.hub.Poke()
	}
	return out, err
}

// markRead records that agent has read up to seq.
func (in *Inbox) markRead(agent, page, psid string, seq uint64) error {
	return in.db.b.Update(func(tx *bolt.Tx) error {
		c, err := getConv(tx, page, psid)
		if err != nil || c == nil {
			return err
		}
		if seq > c.LastSeq {
			seq = c.LastSeq
		}
		if seq <= readSeq(tx, agent, page, psid) {
			return nil
		}
		return putRead(tx, agent, page, psid, seq)
	})
}
