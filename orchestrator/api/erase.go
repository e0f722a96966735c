package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/store"
)

// Eraser removes everything Baton keeps about one person (the deletion
// service).
type Eraser interface {
	Erase(ctx context.Context, k store.ThreadKey) (store.Erased, error)
}

// ErasedView is the answer of POST /admin/threads/{page}/{psid}/erase.
type ErasedView struct {
	PageID string       `json:"page_id"`
	PSID   string       `json:"psid"`
	Erased store.Erased `json:"erased"`
}

// erase removes what Baton keeps about the person of a thread: what an
// operator runs for a person's request that did not come through Meta's
// callback (baton erase). The page need not be in the config any more:
// what was received on it stays until erased.
func (api *API) erase(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	if !messenger.ValidID(v["page"]) {
		return apierr.Errorf(apierr.Invalid, "page %q: want 1 to %d decimal digits", v["page"], messenger.MaxIDLength)
	}
	if err := validPSID(v["psid"]); err != nil {
		return err
	}
	if api.d.Eraser == nil {
		return apierr.Errorf(apierr.Invalid, "this Baton erases nothing")
	}
	k := store.ThreadKey{Page: v["page"], PSID: v["psid"]}
	// The erase finishes even if the operator's request goes away: its
	// steps are each durable, and half an erase is no answer.
	e, err := api.d.Eraser.Erase(context.WithoutCancel(r.Context()), k)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, ErasedView{PageID: k.Page, PSID: k.PSID, Erased: e})
	return nil
}

// listJournal lists the webhook events as received, oldest first:
// GET /admin/journal?after=SEQ&limit=N, optionally only those of one
// page and one person (page=, psid=: the event's sender or recipient).
// next_after is the seq to ask after for the next page, 0 after the last;
// a filtered page may hold fewer than limit entries.
func (api *API) listJournal(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var after uint64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return apierr.Errorf(apierr.Invalid, "after must be a journal seq")
		}
		after = n
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return apierr.Errorf(apierr.Invalid, "limit must be 1 to 1000")
		}
		limit = n
	}
	page, psid := q.Get("page"), q.Get("psid")
	var js []store.JournalEntry
	if err := api.d.Store.View(func(tx store.ReadTx) error {
		var err error
		js, err = tx.Journal(after, limit)
		return err
	}); err != nil {
		return err
	}
	var next uint64
	if len(js) == limit {
		next = js[len(js)-1].Seq
	}
	out := make([]store.JournalEntry, 0, len(js))
	for _, j := range js {
		if (page == "" || j.Page == page) && (psid == "" || eventOf(j.Event, psid)) {
			out = append(out, j)
		}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"entries": out, "next_after": next})
	return nil
}

// eventOf reports whether the person is the event's sender or recipient.
func eventOf(ev json.RawMessage, psid string) bool {
	var who struct {
		Sender    struct{ ID string } `json:"sender"`
		Recipient struct{ ID string } `json:"recipient"`
	}
	return json.Unmarshal(ev, &who) == nil && (who.Sender.ID == psid || who.Recipient.ID == psid)
}
