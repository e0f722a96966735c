package api

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/handover"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// ThreadView is a thread as the APIs show it: app names, not only ids.
type ThreadView struct {
	PageID            string     `json:"page_id"`
	PSID              string     `json:"psid"`
	State             string     `json:"state"`
	Owner             string     `json:"owner"`
	OwnerAppID        string     `json:"owner_app_id"`
	ExpiresAt         *time.Time `json:"expires_at"`
	LastUserMessageAt *time.Time `json:"last_user_message_at"`
	UpdatedAt         *time.Time `json:"updated_at,omitempty"`
	// ActiveAt is the last message from the person or the owner.
	ActiveAt *time.Time `json:"active_at,omitempty"`
	// OwnerActiveAt is the owner's last message (or when it got control).
	OwnerActiveAt *time.Time `json:"owner_active_at,omitempty"`
	// HoldUntil is how long the owner holds the return rule off (a human
	// is on it: POST /v1/.../activity), and HeldBy who.
	HoldUntil *time.Time    `json:"hold_until,omitempty"`
	HeldBy    string        `json:"held_by,omitempty"`
	Version   uint64        `json:"version"`
	History   []HistoryView `json:"history,omitempty"`
	// Pending are the rules' jobs waiting on the thread (return timers,
	// failbacks, escalations under way).
	Pending []JobView `json:"pending,omitempty"`
}

// JobView is a rule's pending job on a thread.
type JobView struct {
	Rule     string    `json:"rule"`
	At       time.Time `json:"at"`
	App      string    `json:"app,omitempty"`
	Target   string    `json:"target,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
}

// HistoryView is one transition as the APIs show it.
type HistoryView struct {
	At       time.Time `json:"at"`
	Event    string    `json:"event"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	By       string    `json:"by"`
	Cause    string    `json:"cause"`
	Metadata string    `json:"metadata"`
	// Ignored says why this evidence did not move the owner (it was
	// older than the last transition): From is the owner kept, To the one
	// it showed.
	Ignored string `json:"ignored,omitempty"`
}

// DeliveryView is a delivery as the admin API shows it.
type DeliveryView struct {
	ID          uint64          `json:"id"`
	App         string          `json:"app"`
	PageID      string          `json:"page_id"`
	PSID        string          `json:"psid"`
	Channel     string          `json:"channel"`
	Kind        string          `json:"kind"`
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts"`
	LastError   string          `json:"last_error,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	NextAttempt *time.Time      `json:"next_attempt,omitempty"`
	DeadAt      *time.Time      `json:"dead_at,omitempty"`
	Event       json.RawMessage `json:"event"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (api *API) view(th store.Thread, hist []store.HistoryEntry) ThreadView {
	top := api.d.Topology
	v := ThreadView{PageID: th.Page, PSID: th.PSID, State: string(th.State), OwnerAppID: th.Owner, Owner: top.Name(th.Owner),
		ExpiresAt: timePtr(th.ExpiresAt), LastUserMessageAt: timePtr(th.LastUserMessageAt), UpdatedAt: timePtr(th.UpdatedAt),
		ActiveAt: timePtr(th.ActiveAt), OwnerActiveAt: timePtr(th.OwnerActiveAt), Version: th.Version}
	if !th.HoldUntil.IsZero() {
		v.HoldUntil, v.HeldBy = timePtr(th.HoldUntil), th.HeldBy
	}
	if v.State == "" {
		v.State = string(statemachine.Idle)
	}
	if hist != nil {
		v.History = []HistoryView{}
	}
	for _, h := range hist {
		v.History = append(v.History, HistoryView{At: h.At, Event: h.Event, From: top.Name(h.From), To: top.Name(h.To), By: top.Name(h.By), Cause: h.Cause, Metadata: h.Metadata, Ignored: h.Ignored})
	}
	return v
}

// threadView reads a thread with its history and pending jobs; a thread
// Baton never saw on a configured page is shown idle with an empty
// history.
func (api *API) threadView(pageID, psid string) (ThreadView, error) {
	p := api.d.Topology.Page(pageID)
	if p == nil {
		return ThreadView{}, apierr.Errorf(apierr.NotFound, "page %s is not configured", pageID)
	}
	if err := validPSID(psid); err != nil {
		return ThreadView{}, err
	}
	k := store.ThreadKey{Page: pageID, PSID: psid}
	var th store.Thread
	var hist []store.HistoryEntry
	var jobs []store.Job
	err := api.d.Store.View(func(tx store.ReadTx) error {
		var err error
		if th, err = threads.Load(tx, p, k); err != nil {
			return err
		}
		for _, rule := range handover.Rules {
			j, err := tx.Job(k, rule)
			switch {
			case err == nil:
				jobs = append(jobs, j)
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
		}
		hist, err = tx.History(k)
		return err
	})
	if hist == nil {
		hist = []store.HistoryEntry{}
	}
	v := api.view(th, hist)
	for _, j := range jobs {
		v.Pending = append(v.Pending, JobView{Rule: j.Rule, At: j.At, App: j.App, Target: j.Target, Reason: j.Reason, Attempts: j.Attempts})
	}
	return v, err
}

// validPSID refuses a PSID that is not one: it would be part of a store
// key.
func validPSID(psid string) error {
	if !messenger.ValidID(psid) {
		return apierr.Errorf(apierr.Invalid, "psid %q: want 1 to %d decimal digits", psid, messenger.MaxIDLength)
	}
	return nil
}

func deliveryView(d store.Delivery) DeliveryView {
	return DeliveryView{ID: d.ID, App: d.App, PageID: d.Page, PSID: d.PSID, Channel: d.Channel, Kind: d.Kind, Status: d.Status,
		Attempts: d.Attempts, LastError: d.LastError, CreatedAt: d.CreatedAt, NextAttempt: timePtr(d.NextAttempt), DeadAt: timePtr(d.DeadAt), Event: d.Event}
}
