package api

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/store"
)

// TranscriptEntryView is one line of a thread's transcript as the APIs
// show it. Every field is always present: the inbox and the console read
// them without guessing.
type TranscriptEntryView struct {
	Seq         uint64           `json:"seq"`
	At          time.Time        `json:"at"`
	Kind        string           `json:"kind"`
	From        string           `json:"from"`
	To          string           `json:"to"`
	App         string           `json:"app"`
	Text        string           `json:"text"`
	Attachments []AttachmentView `json:"attachments"`
	Mid         string           `json:"mid"`
	Payload     string           `json:"payload"`
	Event       string           `json:"event"`
	Metadata    string           `json:"metadata"`
	AIGenerated bool             `json:"ai_generated"`
}

// AttachmentView is a message's attachment.
type AttachmentView struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// TranscriptHitView is a thread a transcript search found.
type TranscriptHitView struct {
	PageID  string    `json:"page_id"`
	PSID    string    `json:"psid"`
	Name    string    `json:"name"`
	LastAt  time.Time `json:"last_at"`
	Snippet string    `json:"snippet"`
}

func transcriptEntryView(e store.TranscriptEntry) TranscriptEntryView {
	v := TranscriptEntryView{Seq: e.Seq, At: e.At, Kind: e.Kind, From: e.From, To: e.To, App: e.App, Text: e.Text,
		Attachments: []AttachmentView{}, Mid: e.Mid, Payload: e.Payload, Event: e.Event, Metadata: e.Metadata, AIGenerated: e.AIGenerated}
	for _, a := range e.Attachments {
		v.Attachments = append(v.Attachments, AttachmentView{Type: a.Type, URL: a.URL})
	}
	return v
}

// queryLimit reads ?limit=: def when absent, 1 to max.
func queryLimit(r *http.Request, def, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, apierr.Errorf(apierr.Invalid, "limit must be 1 to %d", max)
	}
	return n, nil
}

// getTranscript answers GET .../threads/{page}/{psid}/transcript: the
// newest limit lines older than the cursor, oldest first.
func (api *API) getTranscript(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	if api.d.Topology.Page(v["page"]) == nil {
		return apierr.Errorf(apierr.NotFound, "page %s is not configured", v["page"])
	}
	if err := validPSID(v["psid"]); err != nil {
		return err
	}
	limit, err := queryLimit(r, 50, 500)
	if err != nil {
		return err
	}
	k := store.ThreadKey{Page: v["page"], PSID: v["psid"]}
	var es []store.TranscriptEntry
	var next string
	err = api.d.Store.View(func(tx store.ReadTx) error {
		var err error
		es, next, err = tx.Transcript(k, r.URL.Query().Get("cursor"), limit)
		return err
	})
	if errors.Is(err, store.ErrInvalidCursor) {
		return apierr.Errorf(apierr.Invalid, "%v", err)
	}
	if err != nil {
		return err
	}
	out := make([]TranscriptEntryView, 0, len(es))
	for _, e := range es {
		out = append(out, transcriptEntryView(e))
	}
	WriteJSON(w, http.StatusOK, map[string]any{"entries": out, "next_cursor": next})
	return nil
}

func (api *API) botGetTranscript(w http.ResponseWriter, r *http.Request) error {
	if err := api.onPage(r); err != nil {
		return err
	}
	return api.getTranscript(w, r)
}

// searchTranscripts answers GET /admin/transcripts?q=&page=: threads by
// a word of their conversation, the PSID or the person's name, latest
// first; a bounded scan (store.TranscriptScanBudget lines a page).
func (api *API) searchTranscripts(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if page := q.Get("page"); page != "" && api.d.Topology.Page(page) == nil {
		return apierr.Errorf(apierr.NotFound, "page %s is not configured", page)
	}
	limit, err := queryLimit(r, 20, 100)
	if err != nil {
		return err
	}
	if len(q.Get("q")) > 200 {
		return apierr.Errorf(apierr.Invalid, "q: at most 200 bytes")
	}
	var hits []store.TranscriptHit
	var next string
	err = api.d.Store.View(func(tx store.ReadTx) error {
		var err error
		hits, next, err = tx.SearchTranscripts(store.TranscriptSearch{Query: q.Get("q"), Page: q.Get("page"), Limit: limit, Cursor: q.Get("cursor")})
		return err
	})
	if errors.Is(err, store.ErrInvalidCursor) {
		return apierr.Errorf(apierr.Invalid, "%v", err)
	}
	if err != nil {
		return err
	}
	out := make([]TranscriptHitView, 0, len(hits))
	for _, h := range hits {
		out = append(out, TranscriptHitView{PageID: h.Page, PSID: h.PSID, Name: h.Name, LastAt: h.LastAt, Snippet: h.Snippet})
	}
	WriteJSON(w, http.StatusOK, map[string]any{"threads": out, "next_cursor": next})
	return nil
}

// retryMaxScan bounds how many dead letters a retry per app reads.
const retryMaxScan = 10000

// retryApp answers POST /admin/deliveries/retry?app=NAME: puts back up
// to limit (100 by default, at most 1,000) of the app's dead letters,
// oldest first, and says how many went back, how many could not and how
// many are left.
func (api *API) retryApp(w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Query().Get("app")
	if a := api.d.Topology.App(name); a == nil || !a.Hosted {
		return apierr.Errorf(apierr.Invalid, "app must name a hosted app: %q is not one", name)
	}
	limit, err := queryLimit(r, 100, 1000)
	if err != nil {
		return err
	}
	var ids []uint64
	err = api.d.Store.View(func(tx store.ReadTx) error {
		dead, err := tx.DeadDeliveries(0, retryMaxScan)
		for _, d := range dead {
			if d.App == name {
				ids = append(ids, d.ID)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	retried, failed := 0, 0
	var errs []string
	fail := func(msg string) {
		failed++
		if len(errs) < 5 {
			errs = append(errs, msg)
		}
	}
	for _, id := range ids[:min(len(ids), limit)] {
		_, err := api.d.Deliveries.Retry(r.Context(), id)
		var no *store.NotOwnedError
		if errors.As(err, &no) && api.d.Remote != nil {
			// Another replica holds the thread: its own retry puts it back.
			status, body, rerr := api.d.Remote(r, no.Shard, http.MethodPost, fmt.Sprintf("/admin/deliveries/%d/retry", id))
			switch {
			case rerr != nil:
				err = rerr
			case status != http.StatusOK:
				err = fmt.Errorf("the owner of shard %d answered %d: %s", no.Shard, status, bytes.TrimSpace(body))
			default:
				err = nil
			}
		}
		if err != nil {
			fail(apierr.MessageOf(err))
			continue
		}
		retried++
	}
	out := map[string]any{"app": name, "retried": retried, "failed": failed,
		"remaining": len(ids) - retried, "errors": errs}
	WriteJSON(w, http.StatusOK, out)
	return nil
}
