package adapters

import "time"

// KindErasure is the kind of the delivery that tells a hosted app Baton
// erased a person (README "Data deletion"): the app deletes its own copy
// of what that person said. It is Baton's own event, not Meta's, hence
// the "baton." prefix that no Meta event kind has; only adapters that
// carry Baton's envelope (type http) get it.
const KindErasure = "baton.erasure"

// Erasure is the event of a KindErasure delivery. It names the person by
// page and PSID and carries nothing else of them: their thread, messages
// and name are gone from Baton by the time it is sent.
type Erasure struct {
	Type     string    `json:"type"` // KindErasure
	PageID   string    `json:"page_id"`
	PSID     string    `json:"psid"`
	ErasedAt time.Time `json:"erased_at"`
}
