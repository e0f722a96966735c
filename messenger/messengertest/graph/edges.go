package graph

import (
	"encoding/json"
	"strings"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// How the thread-control and Send API calls' arguments are read: from a
// JSON body, a form or the query, as Meta takes them.

func isKnownEdge(e string) bool {
	switch e {
	case "thread_owner", "secondary_receivers", "subscribed_apps", "messages",
		"pass_thread_control", "take_thread_control", "request_thread_control", "release_thread_control", "extend_thread_control":
		return true
	}
	return false
}

// fieldList reads the fields parameter: names separated by commas.
func fieldList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		out = append(out, strings.TrimSpace(f))
	}
	return out
}

func (g *API) threadControl(c Caller, ps messenger.Params, edge string) (any, *messenger.Error) {
	switch edge {
	case "pass_thread_control", "take_thread_control", "request_thread_control", "release_thread_control", "extend_thread_control":
	default:
		return nil, metaerr.UnknownPath("/" + edge)
	}
	rcpt, ok := ps.Recipient()
	if !ok || rcpt.ID == "" {
		return nil, metaerr.ParamRequired("recipient")
	}
	return g.rules.ThreadControl(c, Control{
		Op:        strings.TrimSuffix(edge, "_thread_control"),
		PSID:      rcpt.ID,
		Metadata:  ps.String("metadata"),
		TargetApp: messenger.ID(ps.String("target_app_id")),
		Duration:  ps.String("duration"),
	})
}

func (g *API) threadOwner(c Caller, ps messenger.Params) (any, *messenger.Error) {
	psid := ps.String("recipient")
	if psid == "" {
		return nil, metaerr.ParamRequired("recipient")
	}
	if rcpt, ok := ps.Recipient(); ok && rcpt.ID != "" {
		psid = string(rcpt.ID) // tolerate the object form too
	}
	return g.rules.ThreadOwner(c, messenger.ID(psid))
}

func (g *API) send(c Caller, ps messenger.Params) (any, *messenger.Error) {
	var req messenger.SendRequest
	raw, _ := json.Marshal(map[string]any(ps))
	if err := json.Unmarshal(raw, &req); err != nil {
		// Query and form callers send objects as JSON text.
		req = messenger.SendRequest{}
		if json.Unmarshal([]byte(ps.String("message")), &req.Message) != nil && ps.String("message") != "" {
			return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) param message must be a JSON object")
		}
		req.MessagingType, req.Tag, req.SenderAction, req.PersonaID = ps.String("messaging_type"), ps.String("tag"), ps.String("sender_action"), ps.String("persona_id")
		if tc := ps.String("thread_control"); tc != "" {
			req.ThreadControl = &messenger.ThreadControl{}
			_ = json.Unmarshal([]byte(tc), req.ThreadControl)
		}
	}
	rcpt, ok := ps.Recipient()
	if !ok {
		return nil, metaerr.ParamRequired("recipient")
	}
	req.Recipient = rcpt
	return g.rules.Send(c, &req)
}
