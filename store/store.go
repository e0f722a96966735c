// Package store is Baton's persistence: thread records and their history,
// the webhook journal, dedup marks, the delivery outbox and its dead
// letters, thread-control intents and expiry timers. Store is the interface
// every backend implements; store/bolt is the embedded one, and
// store/storetest is the suite each backend must pass.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/statemachine"
)

// ErrNotFound is returned for a record that does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalidCursor is what ReadTx.Threads returns, wrapped with what is
// wrong, for a cursor it did not hand out: one that does not decode, or
// one from a listing of another page. It is the caller's mistake (an API
// answers 400), not the store's.
var ErrInvalidCursor = errors.New("invalid listing cursor")

// CommitStats count a store's write transactions since it was opened, for
// metrics: how many writes share a commit, and where its time goes.
type CommitStats struct {
	Commits uint64        // write transactions committed (or failed)
	Calls   uint64        // write functions run in them
	Commit  time.Duration // total time in the transactions, fsync included
	Apply   time.Duration // of Commit, the time running the write functions
}

// Store runs transactions. Update may group the functions of concurrent
// callers into one durable commit; a function must therefore read and write
// only through its Tx and may be run more than once.
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(fn func(ReadTx) error) error
	Close() error
}

// ThreadKey names a conversation.
type ThreadKey struct {
	Page string `json:"page_id"`
	PSID string `json:"psid"`
}

func (k ThreadKey) String() string { return k.Page + "/" + k.PSID }

// Valid reports whether page and PSID are both Meta ids (1 to 20 digits,
// what messenger.ValidID checks, without the store depending on Meta's
// wire package).
func (k ThreadKey) Valid() bool { return metaID(k.Page) && metaID(k.PSID) }

func metaID(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Thread is a conversation's control record.
type Thread struct {
	ThreadKey
	statemachine.Thread
	UpdatedAt time.Time `json:"updated_at"`
	// ActiveAt is the last message on the thread, from the person or from
	// its owner; OwnerActiveAt the owner's last send. Rules read them.
	ActiveAt      time.Time `json:"active_at,omitzero"`
	OwnerActiveAt time.Time `json:"owner_active_at,omitzero"`
	// HoldUntil is how long the owner asked the return rule to wait (a
	// human agent has the conversation claimed or is typing: the bot
	// API's activity call), and HeldBy who holds it (the agent's name, for
	// operators). The owner renews a hold it keeps; a lapsed one holds
	// nothing, so an owner that crashed holds no thread for ever.
	HoldUntil time.Time `json:"hold_until,omitzero"`
	HeldBy    string    `json:"held_by,omitempty"`
	// TimerAt is where the store keeps the thread's expiry timer: at or
	// before ExpiresAt. The store manages it; see Tx.PutThread.
	TimerAt time.Time `json:"timer_at,omitzero"`
	// EvidenceAt is the time of the latest evidence behind the current
	// owner: Meta's timestamp of the event that showed it, or Baton's
	// clock for a call, a reconcile or an expiry. Evidence older than it
	// does not move the owner (Meta's webhooks may come late and out of
	// order).
	EvidenceAt time.Time `json:"evidence_at,omitzero"`
	// PreviousOwner and LastCause are the owner before the last transition
	// and its cause: evidence from the very millisecond of a call Baton
	// made that shows the owner it took the thread from was sent before
	// the call (an echo of a message the old owner sent just before its
	// pass), so it is older.
	PreviousOwner string `json:"previous_owner,omitempty"`
	LastCause     string `json:"last_cause,omitempty"`
}

// Causes of an ownership change.
const (
	CauseWebhook   = "webhook"   // a handover event, a channel, an echo
	CauseCall      = "call"      // a thread-control call Baton made
	CauseRule      = "rule"      // a rule fired
	CauseExpiry    = "expiry"    // 24 h without a message from the person
	CauseAdmin     = "admin"     // an operator
	CauseReconcile = "reconcile" // GET thread_owner disagreed
)

// HistoryEntry is one transition of a thread.
type HistoryEntry struct {
	At       time.Time `json:"at"`
	Event    string    `json:"event"`
	From     string    `json:"from"` // app id; empty is idle
	To       string    `json:"to"`
	By       string    `json:"by"` // acting app's name, "admin" or "meta"
	Cause    string    `json:"cause"`
	Metadata string    `json:"metadata,omitempty"`
	// Ignored, when set, says why this evidence did not move the owner
	// (it was older than the last transition); From and To are then the
	// owner it kept and the owner it showed.
	Ignored string `json:"ignored,omitempty"`
}

// JournalEntry is one webhook event as received, kept for audit and replay.
type JournalEntry struct {
	Seq        uint64          `json:"seq"`
	ReceivedAt time.Time       `json:"received_at"`
	App        string          `json:"app"`
	Page       string          `json:"page_id"`
	Channel    string          `json:"channel"`
	Event      json.RawMessage `json:"event"`
}

// Delivery statuses.
const (
	DeliveryPending = "pending"
	DeliveryDead    = "dead"
)

// Delivery is one event on its way to one bot.
type Delivery struct {
	ID      uint64          `json:"id"`
	App     string          `json:"app"`
	Page    string          `json:"page_id"`
	PSID    string          `json:"psid"`
	Channel string          `json:"channel"`
	Kind    string          `json:"kind"`
	Event   json.RawMessage `json:"event,omitempty"`
	// JournalSeq names the journal entry holding the event; when it is
	// set and Event is the journal's bytes, the store keeps them once.
	JournalSeq  uint64    `json:"journal_seq,omitempty"`
	SharesEvent bool      `json:"shares_event,omitempty"`
	State       string    `json:"thread_state"`
	Owner       string    `json:"thread_owner,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Status      string    `json:"status"`
	DeadAt      time.Time `json:"dead_at,omitzero"`
	// RetriedDeadAt is when a dead letter that ReviveDelivery put back in
	// the outbox had died; zero for every other delivery.
	RetriedDeadAt time.Time `json:"retried_dead_at,omitzero"`
	// LaterDelivered says that a later delivery of its lane was delivered
	// while this one was dead or waiting again after a retry: its bot gets
	// it out of order. DeleteDelivery sets it.
	LaterDelivered bool `json:"later_delivered,omitempty"`
}

// Lane is the ordering unit of deliveries: one bot, one thread.
func (d *Delivery) Lane() string { return d.App + "|" + d.Page + "|" + d.PSID }

// LaneHead is a pending delivery of a lane (one bot, one thread) as the
// dispatcher schedules it, without the delivery itself.
type LaneHead struct {
	ThreadKey
	ID          uint64
	Attempts    int
	CreatedAt   time.Time
	NextAttempt time.Time
}

// Intent is a thread-control call that was started; one left at start-up
// means Baton crashed mid-call and must reconcile the thread.
type Intent struct {
	ThreadKey
	App      string    `json:"app"`
	Op       string    `json:"op"`
	Target   string    `json:"target,omitempty"`
	By       string    `json:"by,omitempty"`
	Cause    string    `json:"cause,omitempty"`
	Metadata string    `json:"metadata,omitempty"`
	At       time.Time `json:"at"`
}

// OneTimeToken is a one-time notification token a person granted
// (messaging_optins): it lets the page send one message, within a year.
type OneTimeToken struct {
	Token   string    `json:"token"`
	Page    string    `json:"page_id"`
	PSID    string    `json:"psid"`
	Payload string    `json:"payload,omitempty"`
	Created time.Time `json:"created"`
	UsedAt  time.Time `json:"used_at,omitzero"`
}

// Job is a rule's pending work on a thread, due at At: one per rule and
// thread, in a time-ordered index, so that a rule costs nothing on threads
// it does not concern and a restart neither loses nor doubles it.
type Job struct {
	ThreadKey
	Rule string    `json:"rule"`
	At   time.Time `json:"at"`
	// What the rule decided when it armed the job; the rule reads them
	// again when it runs.
	App      string `json:"app,omitempty"`    // acting or concerned app (name)
	Target   string `json:"target,omitempty"` // app name
	Metadata string `json:"metadata,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Message is said to the person before the job acts (escalation).
	Message string    `json:"message,omitempty"`
	Created time.Time `json:"created"`
	// Attempts counts runs that failed and were put back.
	Attempts int `json:"attempts,omitempty"`
}

// Erased counts what an erase removed, by kind of record: everything the
// store keeps about one person. A new kind of per-person record adds its
// count here and its step to each backend's ErasePerson.
type Erased struct {
	Transcript    int `json:"transcript"`         // the conversation's entries
	People        int `json:"people"`             // what Baton learnt of the person (a name)
	Threads       int `json:"threads"`            // the thread record, its expiry timer
	History       int `json:"history"`            // its ownership history
	Journal       int `json:"journal"`            // webhook events as received
	Pending       int `json:"pending_deliveries"` // deliveries not yet made, and their lanes
	Dead          int `json:"dead_letters"`       // with their own copy of the event
	Jobs          int `json:"jobs"`               // rule jobs (escalation, return, ...)
	Intents       int `json:"intents"`            // thread-control calls not yet settled
	OneTimeTokens int `json:"one_time_tokens"`    // one-time notification tokens
	DedupMarks    int `json:"dedup_marks"`        // marks whose key names the person
}

// Add adds o's counts to e.
func (e *Erased) Add(o Erased) {
	e.Threads += o.Threads
	e.Transcript += o.Transcript
	e.People += o.People
	e.History += o.History
	e.Journal += o.Journal
	e.Pending += o.Pending
	e.Dead += o.Dead
	e.Jobs += o.Jobs
	e.Intents += o.Intents
	e.OneTimeTokens += o.OneTimeTokens
	e.DedupMarks += o.DedupMarks
}

// Total is the number of records removed.
func (e Erased) Total() int {
	return e.Threads + e.Transcript + e.People + e.History + e.Journal + e.Pending + e.Dead + e.Jobs + e.Intents + e.OneTimeTokens + e.DedupMarks
}

// Deletion statuses.
const (
	DeletionPending = "pending"
	DeletionDone    = "done"
)

// Deletion is a data deletion request Meta sent for one of the hosted
// apps (its data deletion callback), kept so that its status URL answers
// after a restart and an unfinished erase resumes at start.
type Deletion struct {
	Code string `json:"code"` // the confirmation code Meta shows the person
	App  string `json:"app"`  // hosted app's name
	// UserID is the app-scoped id Meta sent; it is cleared once the erase
	// is done, so that the record of the request keeps no identifier.
	UserID      string    `json:"user_id,omitempty"`
	Status      string    `json:"status"`
	RequestedAt time.Time `json:"requested_at"`
	DoneAt      time.Time `json:"done_at,omitzero"`
	// Threads is how many threads were matched; Erased what went.
	Threads int    `json:"threads"`
	Erased  Erased `json:"erased"`
	// Matched says how the user id was matched to threads.
	Matched string `json:"matched,omitempty"`
	// Attempts counts erase runs that failed and will be tried again;
	// LastError is the last failure.
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// ThreadFilter selects threads for listing.
type ThreadFilter struct {
	Page   string
	Owner  string // app id; "idle" for none
	State  string
	Limit  int
	Cursor string // next from a previous page of the same listing
}

// ReadTx reads.
type ReadTx interface {
	Thread(k ThreadKey) (Thread, error)
	// Threads lists threads in key order, a page of f.Limit (100 when
	// unset, at most 1,000), and the cursor of the next page ("" after
	// the last). A cursor it did not hand out for f.Page is
	// ErrInvalidCursor.
	Threads(f ThreadFilter) (threads []Thread, next string, err error)
	History(k ThreadKey) ([]HistoryEntry, error)
	Delivery(id uint64) (Delivery, error)
	// PendingDeliveries lists the outbox in id order (enqueue order)
	// from the first id after after (0: from the first), at most limit
	// (all when limit <= 0, which only tests and tools that mean it
	// pass), events and all: for listings, not for the dispatcher (see
	// Lanes). A page costs its own deliveries, however long the outbox.
	PendingDeliveries(after uint64, limit int) ([]Delivery, error)
	// Lanes lists the threads that have deliveries pending for app, in
	// thread key order after `after` (the zero key: from the first), at
	// most limit, each with its oldest pending delivery. The dispatcher
	// schedules from it a page of lanes at a time, never the whole outbox
	// (in SQL: SELECT DISTINCT ON (page, psid) ... WHERE app = $1 AND
	// (page, psid) > ($2, $3) ORDER BY page, psid, id LIMIT $4).
	Lanes(app string, after ThreadKey, limit int) ([]LaneHead, error)
	// LanePending lists app's oldest pending deliveries on thread k, at
	// most limit, each with its schedule, in id order, which is enqueue
	// order: a dead letter put back keeps its id, so it comes before the
	// later deliveries of its thread.
	LanePending(app string, k ThreadKey, limit int) ([]LaneHead, error)
	// CountPending is the number of pending deliveries of each app that
	// has any, kept beside the outbox so that metrics never scan it.
	CountPending() (map[string]int, error)
	// DeadDeliveries lists the dead letters the same way.
	DeadDeliveries(after uint64, limit int) ([]Delivery, error)
	Intents() ([]Intent, error)
	Intent(k ThreadKey) (Intent, error)
	OneTimeToken(token string) (OneTimeToken, error)
	// DueTimers lists threads whose control lapses at or before now.
	DueTimers(now time.Time, limit int) ([]ThreadKey, error)
	// NextTimer is the earliest expiry, if any.
	NextTimer() (time.Time, bool, error)
	CountThreads() (map[string]int, error)
	// Job returns the thread's job of rule.
	Job(k ThreadKey, rule string) (Job, error)
	// Jobs lists the jobs of one rule.
	Jobs(rule string) ([]Job, error)
	// DueJobs lists jobs due at or before now, earliest first.
	DueJobs(now time.Time, limit int) ([]Job, error)
	// NextJob is the earliest job's time, if any.
	NextJob() (time.Time, bool, error)
	// Journal lists journal entries after seq after (0: from the first),
	// in the order received, at most limit (100 when unset, at most
	// 1,000).
	Journal(after uint64, limit int) ([]JournalEntry, error)
	// Deletion returns a data deletion request by its code.
	Deletion(code string) (Deletion, error)
	// Deletions lists the deletion requests in status (all when empty),
	// at most limit.
	Deletions(status string, limit int) ([]Deletion, error)
	// Transcript lists thread k's conversation: the newest limit entries
	// (50 when unset, at most 500) older than cursor ("": the newest),
	// oldest first, and the cursor of the older ones ("" when there are
	// none). A cursor it did not hand out for k is ErrInvalidCursor.
	Transcript(k ThreadKey, cursor string, limit int) (entries []TranscriptEntry, next string, err error)
	// SearchTranscripts finds threads whose entries match, latest match
	// first, examining at most TranscriptScanBudget entries a page. A
	// thread is reported once a page; a later page may report it again
	// for an older match.
	SearchTranscripts(s TranscriptSearch) (hits []TranscriptHit, next string, err error)
	// Person returns what Baton learnt of the person of thread k.
	Person(k ThreadKey) (Person, error)
}

// Tx reads and writes.
type Tx interface {
	ReadTx
	// AfterCommit runs fn once the transaction's writes are durable, in
	// the order registered, whoever still waits for the commit; not at
	// all if it rolls back. A function the store runs again registers
	// again: effects of a write (metrics, handing work on, waking loops)
	// belong here, never in the function itself. fn must be quick and
	// must not open a transaction.
	AfterCommit(fn func())
	// PutThread stores the record and makes sure a timer is due at or
	// before its expiry. A later expiry keeps the earlier timer (a message
	// every minute must not move an index entry every minute): when it
	// fires early, RearmTimer moves it.
	PutThread(t Thread) error
	// RearmTimer moves the thread's timer to its current expiry, or drops
	// it when the thread has none.
	RearmTimer(k ThreadKey) error
	AppendHistory(k ThreadKey, h HistoryEntry) error
	// MarkSeen records key at now and reports whether it was new: a mark
	// is remembered for at least window. at is when the event happened by
	// its sender's clock (zero when unknown), the same on every copy and
	// redelivery of the event: marks are laid out in its order, so that
	// the marks of recent events share pages.
	MarkSeen(key string, at, now time.Time, window time.Duration) (fresh bool, err error)
	// SweepSeen forgets marks older than window (whole days at a time)
	// and reports how many days of marks it dropped.
	SweepSeen(now time.Time, window time.Duration) (int, error)
	AppendJournal(j *JournalEntry) error
	// PruneJournal deletes up to limit journal entries received before
	// before, oldest first, and reports how many it deleted. It stops at
	// the first entry a pending delivery still reads its event from.
	PruneJournal(before time.Time, limit int) (int, error)
	// Enqueue adds a delivery and assigns its ID, which is greater than
	// every ID before it.
	Enqueue(d *Delivery) error
	// UpdateDelivery stores a pending delivery's attempts and next
	// attempt; its app, page and PSID must be those it was enqueued with.
	UpdateDelivery(d Delivery) error
	// DeleteDelivery removes a delivered delivery (nothing when it is not
	// pending), and sets LaterDelivered on the older deliveries of its
	// lane that are dead, or pending again after ReviveDelivery.
	DeleteDelivery(id uint64) error
	// KillDelivery moves a pending delivery to the dead letters, with its
	// own copy of the event: a dead letter may outlive the journal's
	// retention. A delivery no longer pending (erased while it was being
	// attempted) is ErrNotFound: it must not come back as a dead letter.
	KillDelivery(d Delivery) error
	// ReviveDelivery moves a dead delivery back to the outbox under its
	// own id, with RetriedDeadAt set and its attempts reset.
	ReviveDelivery(id uint64, now time.Time) (Delivery, error)
	// PutOneTimeToken stores or updates a one-time notification token.
	PutOneTimeToken(t OneTimeToken) error
	// PutJob stores a job, replacing the thread's job of the same rule.
	PutJob(j Job) error
	// DeleteJob removes the thread's job of rule, if any.
	DeleteJob(k ThreadKey, rule string) error
	PutIntent(i Intent) error
	DeleteIntent(k ThreadKey) error
	// ErasePerson removes part of what the store keeps about the person
	// of thread k: every kind Erased counts. Each call does a bounded
	// step, examining or removing about limit records, so that a write
	// holds the store briefly; it reports what it removed and where the
	// next step resumes: "" when nothing is left. The first step passes
	// from "". Records written after the first step (the person wrote
	// again) may be left: an erase removes what was kept when it began.
	// Erase runs the steps.
	ErasePerson(k ThreadKey, from string, limit int) (removed Erased, next string, err error)
	// PutDeletion stores or updates a data deletion request.
	PutDeletion(d Deletion) error
	// AppendTranscript adds an entry to thread k's transcript and assigns
	// its Seq; e.RecordedAt must be set (retention counts from it).
	AppendTranscript(k ThreadKey, e *TranscriptEntry) error
	// PruneTranscript deletes up to limit transcript entries recorded
	// before before, oldest recorded first, and reports how many.
	PruneTranscript(before time.Time, limit int) (int, error)
	// PutPerson stores what Baton learnt of a person.
	PutPerson(p Person) error
}

// EraseStep is how many records one ErasePerson step of Erase handles.
const EraseStep = 2000

// Erase removes everything s keeps about the person of thread k, a
// bounded transaction at a time, and counts what went. Running it again
// finds nothing more: it is safe to repeat after a crash.
func Erase(ctx context.Context, s Store, k ThreadKey) (Erased, error) {
	var total Erased
	from := ""
	for {
		var step Erased
		var next string
		err := s.Update(ctx, func(tx Tx) error {
			var err error
			step, next, err = tx.ErasePerson(k, from, EraseStep)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("erase %s: %w", k, err)
		}
		total.Add(step)
		if next == "" {
			return total, nil
		}
		from = next
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("erase %s: %w", k, err)
		}
	}
}

// WithoutSharedEvent is how a delivery is written: without the event when
// the journal has the same bytes.
func (d Delivery) WithoutSharedEvent() Delivery {
	if d.SharesEvent && d.JournalSeq != 0 {
		d.Event = nil
	}
	return d
}

// OwnerMatches says whether a thread owned by owner (an app id, "" when
// idle) passes the filter's Owner: any when empty, "idle", or that id.
func (f ThreadFilter) OwnerMatches(owner string) bool {
	switch f.Owner {
	case "":
		return true
	case "idle":
		return owner == ""
	}
	return f.Owner == owner
}
