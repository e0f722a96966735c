package messengertest

import (
	"strconv"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/graph"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// The rules as the Graph API calls them (graph.Rules): each call takes
// w.mu, finds the caller's (page, app) and the thread, and applies a
// rule.

var success = map[string]bool{"success": true}

// pageApp is the caller's (page, app). Callers hold w.mu.
func (r *rules) pageApp(c graph.Caller) *pageApp { return r.w.pages[c.Page].apps[c.App] }

// ThreadControl applies a pass, take, request, release or extend on the
// person's thread.
func (r *rules) ThreadControl(c graph.Caller, ctl graph.Control) (any, *messenger.Error) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	caller := r.pageApp(c)
	t := r.w.thread(caller.page, ctl.PSID, false)
	if t == nil {
		return nil, metaerr.NoUser()
	}
	md := ctl.Metadata
	switch ctl.Op {
	case "pass":
		return success, r.pass(caller, t, ctl.TargetApp, md)
	case "take":
		err, ok := r.take(caller, t, md)
		if ok && r.w.settings.TakeSuccessBody == "thread_owner" {
			return map[string]any{"data": []any{map[string]any{"thread_owner": map[string]any{
				"app_id": t.owner, "expiration": t.expires.Unix(),
			}}}}, nil
		}
		return success, err
	case "request":
		return success, r.request(caller, t, md)
	case "release":
		return success, r.release(caller, t, md)
	default:
		secs, perr := strconv.ParseInt(ctl.Duration, 10, 64)
		if perr != nil {
			return nil, metaerr.InvalidParameter()
		}
		return success, r.extend(caller, t, secs)
	}
}

// ThreadOwner answers who owns the person's thread; a person who never
// wrote has an idle thread (the primary receiver's on a legacy page).
func (r *rules) ThreadOwner(c graph.Caller, psid messenger.ID) (any, *messenger.Error) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	caller := r.pageApp(c)
	t := r.w.thread(caller.page, psid, false)
	if t == nil {
		t = &thread{page: caller.page, psid: psid} // never wrote: idle
		if t.page.mode == ModeLegacy {
			t.owner = t.page.defaultApp
		}
	}
	return r.threadOwnerView(caller, t)
}

// SecondaryReceivers lists a legacy page's secondary receivers, for its
// primary receiver only.
func (r *rules) SecondaryReceivers(c graph.Caller) (any, *messenger.Error) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	pg := r.w.pages[c.Page]
	if pg.mode != ModeLegacy || !isPrimary(pg, c.App) {
		return nil, metaerr.NotReceiver()
	}
	data := []messenger.AppInfo{}
	for _, pa := range pg.connectedApps() {
		if !isPrimary(pg, pa.app.id) {
			data = append(data, messenger.AppInfo{ID: pa.app.id, Name: pa.app.name})
		}
	}
	return map[string]any{"data": data}, nil
}

// PageNode answers the page node's fields: name and
// messaging_feature_status.
func (r *rules) PageNode(c graph.Caller, fields []string) (any, *messenger.Error) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	pg := r.w.pages[c.Page]
	res := map[string]any{"id": pg.id}
	for _, f := range fields {
		switch f {
		case "messaging_feature_status":
			cr := pg.multiApp
			res["messaging_feature_status"] = messenger.FeatureStatus{MsgrMultiApp: cr && !pg.instagram, IGMultiApp: cr && pg.instagram}
		case "name":
			res["name"] = pg.name
		}
	}
	return res, nil
}

// Send applies one Send API call.
func (r *rules) Send(c graph.Caller, req *messenger.SendRequest) (any, *messenger.Error) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	return r.send(r.pageApp(c), req)
}
