package api

import (
	"context"
	"net/http"

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
