package setup

import (
	"net/http"
	"slices"
	"strings"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/fakeconfig"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// instagramFields maps each Instagram webhook field to the Messenger
// fields the platform routes an Instagram account's events by: Instagram
// echoes come with messages, reads are messaging_seen (see
// messenger.FieldsForInstagram for Meta's pages).
var instagramFields = []struct {
	name string
	fake []string
}{
	{"messages", []string{"messages", "message_echoes"}},
	{"messaging_postbacks", []string{"messaging_postbacks"}},
	{"messaging_referral", []string{"messaging_referrals"}},
	{"messaging_handover", []string{"messaging_handovers"}},
	{"standby", []string{"standby"}},
	{"messaging_seen", []string{"message_reads"}},
	{"message_reactions", []string{"message_reactions"}},
	{"messaging_optins", []string{"messaging_optins"}},
}

// fieldNames are the webhook fields a page accepts, in Meta's names.
func fieldNames(instagram bool) []string {
	if !instagram {
		return fakeconfig.AllFields
	}
	out := make([]string, len(instagramFields))
	for i, f := range instagramFields {
		out[i] = f.name
	}
	return out
}

// shown lists a subscription (the fields the platform routes by) in the
// page's own field names, in Meta's order.
func shown(instagram bool, routed []string) []string {
	var out []string
	if !instagram {
		for _, f := range fakeconfig.AllFields {
			if slices.Contains(routed, f) {
				out = append(out, f)
			}
		}
		return out
	}
	for _, f := range instagramFields {
		if slices.Contains(routed, f.fake[0]) {
			out = append(out, f.name)
		}
	}
	return out
}

// routedBy returns the fields the platform routes by for the page's
// field f.
func routedBy(instagram bool, f string) []string {
	if instagram {
		for _, ig := range instagramFields {
			if ig.name == f {
				return ig.fake
			}
		}
	}
	return []string{f}
}

// parseFields reads a list of webhook fields, as "a,b", "[a,b]" or
// `["a","b"]`, refusing one that is not in known.
func parseFields(raw, param string, known []string) ([]string, *messenger.Error) {
	if raw == "" {
		return nil, metaerr.ParamRequired(param)
	}
	var out []string
	for f := range strings.SplitSeq(strings.Trim(raw, "[]"), ",") {
		f = strings.Trim(strings.TrimSpace(f), `"`)
		if f == "" {
			continue
		}
		if !slices.Contains(known, f) {
			return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) Param "+param+" must be one of {"+strings.Join(known, ", ")+"} - got \""+f+"\".")
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// Request is one page-token Graph call for this package, from a caller
// the Graph API has already identified by its page access token.
type Request struct {
	Method    string
	Params    messenger.Params
	Page      messenger.ID // the caller's page
	App       messenger.ID // the caller's app
	Instagram bool         // the page is an Instagram professional account
}

// SubscribedApps serves /me/subscribed_apps: GET (every app subscribed to
// the page, with its fields), POST (replace the caller's fields with
// subscribed_fields, a comma list or a JSON array) and DELETE
// (unsubscribe the caller). Meta wants pages_manage_metadata for all
// three (REFERENCE §3.4).
func (s *API) SubscribedApps(req Request) (any, *messenger.Error) {
	if !slices.Contains(s.scopes[pageApp{req.Page, req.App}], "pages_manage_metadata") {
		return nil, metaerr.New(messenger.CodePermissionsError, 0, "(#200) Requires pages_manage_metadata permission to manage the object")
	}
	switch req.Method {
	case http.MethodGet:
		data := []messenger.SubscribedApp{}
		for _, other := range s.world.PageApps(req.Page) {
			if len(other.Fields) == 0 {
				continue
			}
			data = append(data, messenger.SubscribedApp{ID: other.App, Name: other.AppName, Category: "Business", SubscribedFields: shown(req.Instagram, other.Fields)})
		}
		return map[string]any{"data": data}, nil
	case http.MethodPost:
		fields, gerr := parseFields(req.Params.String("subscribed_fields"), "subscribed_fields", fieldNames(req.Instagram))
		if gerr != nil {
			return nil, gerr
		}
		var next []string
		for _, f := range fields {
			for _, internal := range routedBy(req.Instagram, f) {
				if !slices.Contains(next, internal) {
					next = append(next, internal)
				}
			}
		}
		s.world.Subscribe(req.Page, req.App, next)
		return success, nil
	case http.MethodDelete:
		s.world.Subscribe(req.Page, req.App, nil)
		return success, nil
	}
	return nil, metaerr.Unsupported(strings.ToLower(req.Method), string(req.Page))
}
