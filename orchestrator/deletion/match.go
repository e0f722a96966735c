package deletion

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"go.uber.org/zap"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// The callback names the person by an app-scoped user id (ASID): the id
// Facebook Login gives the app. Messenger names them by a page-scoped id
// (PSID), one per page, and the two differ. Meta's ID Matching API maps
// one to the other: GET /{asid}/ids_for_pages with the app's access token
// ("app_id|app_secret") lists the person's PSIDs on the pages of the
// business that owns the app ("ID Matching" under developers.facebook.com/
// docs/messenger-platform/identity; the call as qiita.com/unsoluble_sugar
// shows it). A person who only ever wrote to the
// page has no ASID until they use Facebook Login, so the mapping may come
// back empty or fail (the app lacks the business link): then Baton
// erases what matches the id as it is.
//
// What is matched, on every page of the config the app is on:
//  1. the thread whose PSID is the user id itself;
//  2. each (page, PSID) ids_for_pages returns for one of those pages.

// match lists the threads of the person app a names by userID, and says
// how they were found.
func (s *Service) match(ctx context.Context, a *topology.App, userID string) ([]store.ThreadKey, string) {
	var pages []*topology.Page
	for _, p := range s.d.Topology.Pages() {
		if p.HasApp(a.ID) {
			pages = append(pages, p)
		}
	}
	seen := map[store.ThreadKey]bool{}
	var keys []store.ThreadKey
	add := func(k store.ThreadKey) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, p := range pages {
		add(store.ThreadKey{Page: p.ID, PSID: userID})
	}
	how := fmt.Sprintf("the user id as a PSID on %d page(s)", len(pages))
	if s.d.Graph == nil {
		return keys, how
	}
	ids, err := s.idsForPages(ctx, a, userID)
	if err != nil {
		s.d.Log.Warn("ID Matching API not answered; the user id is matched as a PSID only", zap.String("app", a.Name), zap.Error(err))
		return keys, how + "; ids_for_pages not answered"
	}
	n := 0
	for _, k := range ids {
		for _, p := range pages {
			if p.ID == k.Page && !seen[k] {
				add(k)
				n++
			}
		}
	}
	return keys, how + fmt.Sprintf("; %d more PSID(s) from ids_for_pages", n)
}

// idsForPages asks Meta for the person's PSIDs (one page of 100: a person
// is on few of one business's pages).
func (s *Service) idsForPages(ctx context.Context, a *topology.App, userID string) ([]store.ThreadKey, error) {
	secret := string(a.Secret)
	cred := messenger.Credentials{PageID: messenger.ID(userID), AccessToken: a.ID + "|" + secret, AppSecret: secret}
	status, body, err := s.d.Graph.RawBody(ctx, http.MethodGet, cred, "ids_for_pages", url.Values{"limit": {"100"}}, "", nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		var ge struct {
			Error messenger.Error `json:"error"`
		}
		if json.Unmarshal(body, &ge) == nil && ge.Error.Code != 0 {
			return nil, &ge.Error
		}
		return nil, fmt.Errorf("ids_for_pages answered %d", status)
	}
	var res struct {
		Data []struct {
			ID   string `json:"id"`
			Page struct {
				ID string `json:"id"`
			} `json:"page"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("ids_for_pages: answer is not JSON: %w", err)
	}
	var out []store.ThreadKey
	for _, d := range res.Data {
		if messenger.ValidID(d.ID) && messenger.ValidID(d.Page.ID) {
			out = append(out, store.ThreadKey{Page: d.Page.ID, PSID: d.ID})
		}
	}
	return out, nil
}
