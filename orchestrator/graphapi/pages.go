package graphapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// page resolves the page a call is on: a page id of one of the app's
// pages, or "me". For "me" that is, in order: the page the token stands
// for (a page's own Baton token), the app's only page, or the one page of
// the app on which Baton has a thread with the call's recipient. Anything
// else is Meta's error, one that says what to do.
func (g *Endpoint) page(c *call, node string) (*topology.Page, *messenger.Error) {
	if node != "me" {
		p := g.d.Topology.Page(node)
		if p == nil || p.Tokens[c.app.Name] == "" || (c.bound != nil && c.bound != p) {
			return nil, unsupported(c.r.Method, node)
		}
		return p, nil
	}
	if c.bound != nil {
		return c.bound, nil
	}
	pages := g.appPages(c)
	switch len(pages) {
	case 0:
		return nil, newError(http.StatusBadRequest, 100, 0, "(#100) This app has no page token in Baton's config")
	case 1:
		return pages[0], nil
	}
	psid := recipientPSID(c.ps)
	if rcpt, ok := c.ps.Recipient(); ok && psid == "" && rcpt.OneTimeNotifToken != "" {
		psid = g.tokenPSID(pages, rcpt.OneTimeNotifToken)
	}
	if psid != "" {
		with, err := g.withThread(pages, psid)
		if err != nil {
			return nil, unavailable()
		}
		if len(with) == 1 {
			return with[0], nil
		}
	}
	return nil, newError(http.StatusBadRequest, 100, 0, "(#100) This app is on several pages in Baton and /me does not say which: "+
		"call /{page-id}/... instead, name a recipient Baton has a thread with on one of them, "+
		"or give the SDK the page's own Baton token (pages[].tokens."+c.app.Name+".api_token_env)")
}

// appPages are the pages a call may act on: the one its token stands for,
// or every page on which the app has a page token.
func (g *Endpoint) appPages(c *call) []*topology.Page {
	if c.bound != nil {
		return []*topology.Page{c.bound}
	}
	var out []*topology.Page
	for _, p := range g.d.Topology.Pages() {
		if p.Tokens[c.app.Name] != "" {
			out = append(out, p)
		}
	}
	return out
}

// withThread are the pages among pages on which Baton has a thread with
// psid: a PSID is scoped to one page, so at most one in practice.
func (g *Endpoint) withThread(pages []*topology.Page, psid string) ([]*topology.Page, error) {
	var out []*topology.Page
	err := g.d.Store.View(func(tx store.ReadTx) error {
		out = out[:0] // a View may be run again
		for _, p := range pages {
			_, err := tx.Thread(store.ThreadKey{Page: p.ID, PSID: psid})
			switch {
			case err == nil:
				out = append(out, p)
			case !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("read thread %s/%s: %w", p.ID, psid, err)
			}
		}
		return nil
	})
	return out, err
}

// tokenPSID is the person a one-time notification token was given by, when
// Baton recorded it on one of pages.
func (g *Endpoint) tokenPSID(pages []*topology.Page, tok string) string {
	var t store.OneTimeToken
	if g.d.Store.View(func(tx store.ReadTx) error {
		var err error
		t, err = tx.OneTimeToken(tok)
		return err
	}) != nil {
		return ""
	}
	for _, p := range pages {
		if p.ID == t.Page {
			return t.PSID
		}
	}
	return ""
}

// unsupported is Meta's answer for a node that does not exist or that the
// token may not see (100/33), worded with the method as Meta words it.
func unsupported(method, node string) *messenger.Error {
	e := newError(http.StatusBadRequest, 100, 33, "Unsupported "+strings.ToLower(method)+" request. Object with ID '"+node+
		"' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api")
	e.Type = "GraphMethodException"
	return e
}

// unavailable is Meta's transient error, for a call Baton could not judge
// because its own store failed.
func unavailable() *messenger.Error {
	e := newError(http.StatusServiceUnavailable, messenger.CodeService, 0, "Service temporarily unavailable")
	e.IsTransient = true
	return e
}
