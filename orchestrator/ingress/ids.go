package ingress

import (
	"strconv"

	"github.com/batonhq/baton/messenger"
)

// isID reports whether s is an id as Meta makes them (messenger.ValidID):
// ids become store keys (page NUL psid), and anything else, a NUL above
// all, could reach into another thread's keys.
func isID(s messenger.ID) bool { return messenger.ValidID(string(s)) }

// badID names the first id of an event that is not Meta's, or returns ""
// when all are. Ids Meta may leave out (a user_ref sender's id, a
// previous owner of an idle thread) may be empty.
func badID(en *messenger.Entry, ev *messenger.Event) string {
	if !isID(en.ID) {
		return "entry.id " + quoteShort(string(en.ID))
	}
	bad := ""
	check := func(field string, id messenger.ID) {
		if bad == "" && id != "" && !isID(id) {
			bad = field + " " + quoteShort(string(id))
		}
	}
	check("recipient.id", ev.Recipient.ID)
	if ev.Sender != nil {
		check("sender.id", ev.Sender.ID)
	}
	if m := ev.Message; m != nil {
		check("message.app_id", m.AppID)
	}
	if h := ev.PassThreadControl; h != nil {
		check("pass_thread_control.previous_owner_app_id", h.PreviousOwnerAppID)
		check("pass_thread_control.new_owner_app_id", h.NewOwnerAppID)
	}
	if h := ev.TakeThreadControl; h != nil {
		check("take_thread_control.previous_owner_app_id", h.PreviousOwnerAppID)
		check("take_thread_control.new_owner_app_id", h.NewOwnerAppID)
	}
	if h := ev.RequestThreadControl; h != nil {
		check("request_thread_control.requested_owner_app_id", h.RequestedOwnerAppID)
	}
	for id := range ev.AppRoles {
		check("app_roles", id)
	}
	return bad
}

// quoteShort quotes a value a stranger chose for a message: at most 40
// bytes of it, escaped.
func quoteShort(s string) string {
	const most = 40
	if len(s) > most {
		return strconv.Quote(s[:most]) + "..."
	}
	return strconv.Quote(s)
}
