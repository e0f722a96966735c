package graphapi

import (
	"net/http"
	"strings"

	"github.com/batonhq/baton/messenger"
)

// handling is what the endpoint does with one (method, edge).
type handling int

const (
	refused     handling = iota
	control              // thread control, through the thread-control service
	send                 // the Send API, behind the send policy
	passThrough          // to Meta with the app's page token, answered unchanged
	subscribe            // the page subscription, with Baton's fields kept in it
)

// allowed is the allow-list: the calls a bot on Messenger legitimately
// makes with its page's token. Everything else is refused with Meta's
// permission error, so that a Baton token can never read what the page
// token could (the page's token itself, its conversations, other apps'
// data). The node itself ("" edge) is readable only for pageFields.
var allowed = map[string]handling{
	"POST pass_thread_control":    control,
	"POST take_thread_control":    control,
	"POST request_thread_control": control,
	"POST release_thread_control": control,
	"POST extend_thread_control":  control,
	"POST messages":               send,
	"GET ":                        passThrough,
	"GET thread_owner":            passThrough,
	"GET secondary_receivers":     passThrough,
	"GET subscribed_apps":         passThrough,
	"POST subscribed_apps":        subscribe,
	"GET messenger_profile":       passThrough,
	"POST messenger_profile":      passThrough,
	"DELETE messenger_profile":    passThrough,
	"POST message_attachments":    passThrough,
	"GET personas":                passThrough,
	"POST personas":               passThrough,
}

// pageFields are the fields of the page node a bot may read.
var pageFields = map[string]bool{
	"id": true, "name": true, "messaging_feature_status": true, "username": true, "category": true, "link": true, "picture": true,
}

// profileFields are the User Profile API's fields of a person, by PSID
// (developers.facebook.com/docs/messenger-platform/identity/user-profile:
// id, name, first_name, last_name, profile_pic; locale, timezone and
// gender with further permissions). defaultProfileFields are asked for
// when a bot names none, so that Meta's defaults cannot grow behind
// Baton's back.
var profileFields = map[string]bool{
	"id": true, "name": true, "first_name": true, "last_name": true, "profile_pic": true, "locale": true, "timezone": true, "gender": true,
}

// igProfileFields are an Instagram user's (by IGSID) fields: Meta's
// Instagram Messaging User Profile API.
var igProfileFields = map[string]bool{
	"id": true, "name": true, "username": true, "profile_pic": true, "follower_count": true,
	"is_user_follow_business": true, "is_business_follow_user": true, "is_verified_user": true,
}

const defaultProfileFields = "id,name"

// personaFields are a persona's fields (the Personas API: id, name,
// profile_picture_url).
var personaFields = map[string]bool{"id": true, "name": true, "profile_picture_url": true}

const defaultPersonaFields = "id,name,profile_picture_url"

// allow decides a call: how it is handled, or Meta's error refusing it.
func allow(method, edge string, ps messenger.Params) (handling, *messenger.Error) {
	h := allowed[method+" "+edge]
	if h == refused {
		if strings.HasSuffix(edge, "_thread_control") && method == http.MethodPost {
			return refused, newError(http.StatusBadRequest, 2500, 0, "Unknown path components: /"+edge)
		}
		return refused, newError(http.StatusBadRequest, messenger.CodePermissionsError, 0, "(#200) Permissions error")
	}
	if edge == "" {
		if gerr := allowFields(ps, pageFields, "fields", ""); gerr != nil {
			return refused, gerr
		}
	}
	return h, nil
}

// allowFields refuses, with Meta's permission error, a read of a field
// not in allowed. def stands for an empty list.
func allowFields(ps messenger.Params, allowed map[string]bool, param, def string) *messenger.Error {
	list := ps.String(param)
	if list == "" {
		list = def
	}
	for _, f := range strings.Split(list, ",") {
		name := strings.TrimSpace(f)
		if i := strings.IndexAny(name, "{.("); i >= 0 {
			name = name[:i]
		}
		if name != "" && !allowed[name] {
			return newError(http.StatusBadRequest, messenger.CodePermissionsError, 0, "(#200) Permissions error: field "+name+" is not available through Baton")
		}
	}
	return nil
}
