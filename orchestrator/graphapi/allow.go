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
	"POST subscribed_apps":        passThrough,
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
		for _, f := range strings.Split(ps.String("fields"), ",") {
			name := strings.TrimSpace(f)
			if i := strings.IndexAny(name, "{.("); i >= 0 {
				name = name[:i]
			}
			if name != "" && !pageFields[name] {
				return refused, newError(http.StatusBadRequest, messenger.CodePermissionsError, 0, "(#200) Permissions error: field "+name+" is not available through Baton")
			}
		}
	}
	return h, nil
}
