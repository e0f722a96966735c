package console

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// overviewScan bounds the threads the overview reads of each page, and
// deadScan the dead letters it counts: the counts say when they stopped
// short ("truncated"), a page never stalls the admin listener.
const (
	overviewScan = 20000
	deadScan     = 10000
	waitingShown = 50
)

// Overview is what the console's first view shows.
type Overview struct {
	Now            time.Time      `json:"now"`
	WaitingMinutes int            `json:"waiting_minutes"`
	Pages          []PageOverview `json:"pages"`
	Bots           []BotOverview  `json:"bots"`
	Pending        int            `json:"pending"`
	Dead           int            `json:"dead"`
	DeadTruncated  bool           `json:"dead_truncated"`
}

// PageOverview counts one page's threads.
type PageOverview struct {
	PageID    string         `json:"page_id"`
	Platform  string         `json:"platform"`
	Threads   int            `json:"threads"`
	ByState   map[string]int `json:"by_state"`
	ByOwner   map[string]int `json:"by_owner"` // app name; "idle"
	Waiting   []Waiting      `json:"waiting"`
	Truncated bool           `json:"truncated"`
}

// Waiting is a conversation a human should answer: a secondary app (an
// inbox) owns it and the person's last message is older than the owner's
// last send by more than the waiting time.
type Waiting struct {
	PSID  string    `json:"psid"`
	Name  string    `json:"name"`
	Owner string    `json:"owner"`
	Since time.Time `json:"since"`
}

// BotOverview is a hosted app's delivery health.
type BotOverview struct {
	App          string     `json:"app"`
	Healthy      bool       `json:"healthy"`
	FailingSince *time.Time `json:"failing_since"`
	Pending      int        `json:"pending"`
	Dead         int        `json:"dead"`
}

func (c *Console) overview(r *http.Request) (Overview, error) {
	wait := 10
	if s := r.URL.Query().Get("waiting"); s != "" {
		if _, err := fmt.Sscanf(s, "%d", &wait); err != nil || wait < 0 || wait > 7*24*60 {
			return Overview{}, errBadRequest("waiting must be minutes, 0 to 10080")
		}
	}
	now := c.d.Clock.Now()
	ov := Overview{Now: now, WaitingMinutes: wait, Pages: []PageOverview{}, Bots: []BotOverview{}}
	err := c.d.Store.View(func(tx store.ReadTx) error {
		for _, p := range c.d.Topology.Pages() {
			po, err := c.pageOverview(tx, p, now, time.Duration(wait)*time.Minute)
			if err != nil {
				return err
			}
			ov.Pages = append(ov.Pages, po)
		}
		pending, err := tx.CountPending()
		if err != nil {
			return err
		}
		dead, err := tx.DeadDeliveries(0, deadScan)
		if err != nil {
			return err
		}
		ov.DeadTruncated = len(dead) == deadScan
		deadBy := map[string]int{}
		for _, d := range dead {
			deadBy[d.App]++
		}
		ov.Dead = len(dead)
		for _, a := range c.d.Topology.Apps() {
			if !a.Hosted {
				continue
			}
			b := BotOverview{App: a.Name, Healthy: true, Pending: pending[a.Name], Dead: deadBy[a.Name]}
			if since, failing := c.d.Health.FailingSince(a.Name); failing {
				b.Healthy, b.FailingSince = false, &since
			}
			ov.Pending += b.Pending
			ov.Bots = append(ov.Bots, b)
		}
		return nil
	})
	return ov, err
}

func (c *Console) pageOverview(tx store.ReadTx, p *topology.Page, now time.Time, wait time.Duration) (PageOverview, error) {
	po := PageOverview{PageID: p.ID, Platform: "messenger", ByState: map[string]int{}, ByOwner: map[string]int{}, Waiting: []Waiting{}}
	if p.Instagram {
		po.Platform = "instagram"
	}
	for _, s := range []statemachine.State{statemachine.Idle, statemachine.Primary, statemachine.Secondary} {
		po.ByState[string(s)] = 0
	}
	cursor := ""
	for {
		list, next, err := tx.Threads(store.ThreadFilter{Page: p.ID, Limit: 1000, Cursor: cursor})
		if err != nil {
			return po, err
		}
		for _, th := range list {
			po.Threads++
			state, owner := th.State, th.Owner
			if !th.ExpiresAt.IsZero() && !now.Before(th.ExpiresAt) {
				state, owner = statemachine.Idle, "" // control lapsed; the expiry loop has yet to write it
			}
			po.ByState[string(state)]++
			name := c.d.Topology.Name(owner)
			if owner == "" {
				name = "idle"
			}
			po.ByOwner[name]++
			if state == statemachine.Secondary && !th.LastUserMessageAt.IsZero() && now.Sub(th.LastUserMessageAt) >= wait {
				unanswered, err := unanswered(tx, th)
				if err != nil {
					return po, err
				}
				if unanswered {
					po.Waiting = append(po.Waiting, Waiting{PSID: th.PSID, Owner: name, Since: th.LastUserMessageAt})
				}
			}
		}
		if po.Threads >= overviewScan && next != "" {
			po.Truncated = true
			break
		}
		if next == "" {
			break
		}
		cursor = next
	}
	sort.Slice(po.Waiting, func(i, j int) bool { return po.Waiting[i].Since.Before(po.Waiting[j].Since) })
	if len(po.Waiting) > waitingShown {
		po.Waiting = po.Waiting[:waitingShown]
	}
	for i := range po.Waiting {
		person, err := tx.Person(store.ThreadKey{Page: p.ID, PSID: po.Waiting[i].PSID})
		if err == nil {
			po.Waiting[i].Name = person.Name
		} else if !errors.Is(err, store.ErrNotFound) {
			return po, err
		}
	}
	return po, nil
}

// unansweredLines is how far back the overview looks in a transcript for
// the person's last message.
const unansweredLines = 20

// unanswered reports whether the person's last message has no reply
// after it: no echo in the transcript since. Getting control is not an
// answer (the ledger counts it as the owner's activity, so the record
// alone cannot tell); without a transcript the record decides.
func unanswered(tx store.ReadTx, th store.Thread) (bool, error) {
	lines, _, err := tx.Transcript(th.ThreadKey, "", unansweredLines)
	if err != nil {
		return false, err
	}
	for i := len(lines) - 1; i >= 0; i-- {
		switch lines[i].Kind {
		case store.TranscriptEcho:
			return false, nil
		case store.TranscriptMessage, store.TranscriptPostback:
			return true, nil
		}
	}
	return th.LastUserMessageAt.After(th.OwnerActiveAt), nil
}
