package store

import "time"

// Transcript entry kinds: what one line of a conversation is.
const (
	TranscriptMessage  = "message"  // the person's message (text, attachments, quick reply)
	TranscriptEcho     = "echo"     // a message the page sent: a bot's, an agent's, Meta AI's
	TranscriptPostback = "postback" // the person tapped a button
	TranscriptReaction = "reaction" // the person reacted to a message
	TranscriptHandover = "handover" // control moved (or was asked for)
	TranscriptRule     = "rule"     // a handover rule fired on the thread
)

// TranscriptEntry is one line of a thread's conversation as Meta delivered
// it, or a change of control between the lines. Entries are kept in the
// order of At (Meta's timestamp for what a webhook showed, Baton's clock
// for what Baton did), then of Seq.
type TranscriptEntry struct {
	// Seq is assigned by AppendTranscript, greater than every one before.
	Seq  uint64    `json:"seq"`
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	// From is who it came from: the person's PSID for their events, the
	// app's name for an echo, the previous owner for a handover; To is
	// the new owner of a handover.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// App names the app an echo was sent by (its YAML name, or its id
	// when the config does not list it; empty: the page itself).
	App         string                 `json:"app,omitempty"`
	Text        string                 `json:"text,omitempty"`
	Attachments []TranscriptAttachment `json:"attachments,omitempty"`
	Mid         string                 `json:"mid,omitempty"`
	// Payload is a postback's or a quick reply's payload.
	Payload string `json:"payload,omitempty"`
	// Event is a handover's event (pass_thread_control, expire, ...), a
	// rule's name, a reaction's action.
	Event       string `json:"event,omitempty"`
	Metadata    string `json:"metadata,omitempty"`
	AIGenerated bool   `json:"ai_generated,omitempty"`
	// RecordedAt is Baton's clock when the entry was written: retention
	// counts from it.
	RecordedAt time.Time `json:"recorded_at"`
}

// TranscriptAttachment is an attachment of a message, as Meta sent it.
type TranscriptAttachment struct {
	Type string `json:"type"`
	URL  string `json:"url,omitempty"`
}

// Person is what Baton learnt of the person of a thread.
type Person struct {
	ThreadKey
	Name      string    `json:"name,omitempty"`
	LearntAt  time.Time `json:"learnt_at"`
	LearntVia string    `json:"learnt_via,omitempty"` // "profile": the User Profile API
}

// TranscriptSearch selects the threads whose conversation matches.
type TranscriptSearch struct {
	// Query matches, case-insensitively, an entry's text, the thread's
	// PSID (exactly) or the person's name (a part of it); empty matches
	// every thread.
	Query  string
	Page   string // one page's threads; empty: all
	Limit  int    // threads in a page of results: 20 when unset, at most 100
	Cursor string // next from a previous page of the same search
}

// TranscriptHit is a thread a search found, at its latest matching entry.
type TranscriptHit struct {
	ThreadKey
	Name    string    `json:"name,omitempty"`
	LastAt  time.Time `json:"last_at"`
	Snippet string    `json:"snippet,omitempty"`
}

// TranscriptScanBudget is how many entries one page of a search examines
// at most: a search is a scan, newest first, bounded so that a query that
// matches nothing costs a known amount; a page cut short by it still
// hands out a cursor.
const TranscriptScanBudget = 20000
