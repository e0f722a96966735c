package graphapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
)

// Personas are listed this many at a time, at most maxPersonaListings
// times a page, to find which page a persona id belongs to.
const (
	personaListLimit   = 100
	maxPersonaListings = 10
)

// object serves a call on a node that is not a page: a person, by the
// PSID Baton has a thread with on one of the app's pages (GET, the User
// Profile API), or a persona of one of the app's pages (GET, DELETE).
// The node is never passed to Meta before Baton has found the page it
// belongs to, so a Baton token reads nothing the allow-list does not name:
// every other id is Meta's 100/33, as if it did not exist.
func (g *Endpoint) object(w http.ResponseWriter, c *call, node, edge string) {
	r, a := c.r, c.app
	refuse := func(e *messenger.Error, why string) {
		g.d.Errors.Record(recent.Error{Kind: "graph", App: a.Name, Message: fmt.Sprintf("refused %s /%s: %s", r.Method, node, why)})
		writeError(w, e)
	}
	if edge != "" || (r.Method != http.MethodGet && r.Method != http.MethodDelete) {
		refuse(unsupported(r.Method, node), "not a page of the app, and only a person or a persona can be read here")
		return
	}
	pages := g.appPages(c)
	if r.Method == http.MethodGet {
		with, err := g.withThread(pages, node)
		if err != nil {
			writeError(w, unavailable())
			return
		}
		if len(with) > 0 {
			fields := profileFields
			if with[0].Instagram {
				fields = igProfileFields
			}
			if gerr := allowFields(c.ps, fields, "fields", defaultProfileFields); gerr != nil {
				refuse(gerr, "a profile field not on the allow-list")
				return
			}
			g.proxy(w, r, with[0], a, node, "", fieldsQuery(c.ps, defaultProfileFields), nil)
			return
		}
	}
	p, status, answer, err := g.personaPage(r.Context(), pages, a, node)
	switch {
	case err != nil:
		writeError(w, errorFor("", err))
		return
	case p == nil && answer != nil:
		writeRaw(w, status, answer) // Meta refused a listing: its words, not a guess
		return
	case p == nil:
		refuse(unsupported(r.Method, node), "no thread with this PSID and no persona with this id on the app's pages")
		return
	}
	var q url.Values
	if r.Method == http.MethodGet {
		if gerr := allowFields(c.ps, personaFields, "fields", defaultPersonaFields); gerr != nil {
			refuse(gerr, "a persona field not on the allow-list")
			return
		}
		q = fieldsQuery(c.ps, defaultPersonaFields)
	}
	g.proxy(w, r, p, a, node, "", q, nil)
}

// personaPage finds the page among pages whose personas include id, by
// listing them with the app's page token. When no page has it, it returns
// Meta's refusal of a listing, if one was refused.
func (g *Endpoint) personaPage(ctx context.Context, pages []*topology.Page, a *topology.App, id string) (*topology.Page, int, []byte, error) {
	var refusedStatus int
	var refused []byte
	for _, p := range pages {
		after := ""
		for range maxPersonaListings {
			q := url.Values{"fields": {"id"}, "limit": {fmt.Sprint(personaListLimit)}}
			if after != "" {
				q.Set("after", after)
			}
			status, raw, err := g.forward(ctx, http.MethodGet, p, a, "", "personas", q, nil)
			if err != nil {
				return nil, 0, nil, err
			}
			var list struct {
				Data   []struct{ ID json.Number } `json:"data"`
				Paging struct {
					Cursors struct{ After string } `json:"cursors"`
					Next    string                 `json:"next"`
				} `json:"paging"`
			}
			if status != http.StatusOK || json.Unmarshal(raw, &list) != nil {
				if refused == nil {
					refusedStatus, refused = status, raw
				}
				break
			}
			for _, d := range list.Data {
				if d.ID.String() == id {
					return p, 0, nil, nil
				}
			}
			if list.Paging.Next == "" || list.Paging.Cursors.After == "" {
				break
			}
			after = list.Paging.Cursors.After
		}
	}
	return nil, refusedStatus, refused, nil
}

// fieldsQuery is the query of a read of a node: the fields asked for, or
// def when none were (Meta's default fields, named so that nothing else
// can come back).
func fieldsQuery(ps messenger.Params, def string) url.Values {
	f := ps.String("fields")
	if f == "" {
		f = def
	}
	return url.Values{"fields": {f}}
}
