package messengertest

import (
	"crypto/hmac"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger"
)

const maxGraphBody = 1 << 20

type params = messenger.Params

// graphCall is one decoded Graph request.
type graphCall struct {
	r      *http.Request
	ps     params
	caller *pageApp
	edge   string
}

// graph serves /{version}/{node}/{edge} and /{node}/{edge}.
func (p *Platform) graph(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	node, edge := vars["node"], vars["edge"]
	call := Call{At: p.now(), Method: r.Method, Path: r.URL.Path, Edge: edge}
	status, body := p.serveGraph(r, node, edge, &call)
	call.Status = status
	if ge, ok := body.(*messenger.Error); ok {
		call.Error = ge
		body = messenger.ErrorEnvelope{Error: ge}
	} else {
		call.Success = true
	}
	p.recordCall(call)
	writeJSON(w, status, body)
}

func (p *Platform) serveGraph(r *http.Request, node, edge string, call *Call) (int, any) {
	ps, err := messenger.ReadParams(r, maxGraphBody)
	if err != nil {
		return http.StatusBadRequest, graphError(messenger.CodeInvalidParameter, 0, "(#100) "+err.Error())
	}
	call.Params = map[string]string{}
	for k := range ps {
		if k != "access_token" && k != "appsecret_proof" { // never record secrets
			call.Params[k] = ps.String(k)
		}
	}
	token := ps.AccessToken(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	caller := p.tokens[token]
	if caller == nil {
		return http.StatusBadRequest, errBadToken()
	}
	call.PageID, call.AppID, call.App = caller.page.id, caller.app.id, caller.app.name
	proof := ps.String("appsecret_proof")
	if proof != "" || p.settings.RequireAppSecretProof {
		want := messenger.AppSecretProof(caller.app.secret, token)
		if !hmac.Equal([]byte(proof), []byte(want)) {
			return http.StatusBadRequest, errBadProof()
		}
	}
	if node != "me" && messenger.ID(node) != caller.page.id {
		return http.StatusBadRequest, errUnsupported(strings.ToLower(r.Method), node)
	}
	c := &graphCall{r: r, ps: ps, caller: caller, edge: edge}
	var res any
	var gerr *messenger.Error
	switch {
	case edge == "" && r.Method == http.MethodGet:
		res, gerr = p.graphNode(c)
	case edge == "thread_owner" && r.Method == http.MethodGet:
		res, gerr = p.graphThreadOwner(c)
	case edge == "secondary_receivers" && r.Method == http.MethodGet:
		res, gerr = p.graphSecondaryReceivers(c)
	case edge == "subscribed_apps":
		res, gerr = p.graphSubscribedApps(c)
	case edge == "messages" && r.Method == http.MethodPost:
		res, gerr = p.graphSend(c)
	case r.Method == http.MethodPost && strings.HasSuffix(edge, "_thread_control"):
		res, gerr = p.graphThreadControl(c)
	case edge == "" || isKnownEdge(edge):
		gerr = errUnsupported(strings.ToLower(r.Method), node)
	default:
		gerr = errUnknownPath("/" + edge)
	}
	if gerr != nil {
		return gerr.HTTPStatus, gerr
	}
	return http.StatusOK, res
}

func isKnownEdge(e string) bool {
	switch e {
	case "thread_owner", "secondary_receivers", "subscribed_apps", "messages",
		"pass_thread_control", "take_thread_control", "request_thread_control", "release_thread_control", "extend_thread_control":
		return true
	}
	return false
}

var success = map[string]bool{"success": true}

func (p *Platform) callThread(c *graphCall) (*thread, *messenger.Error) {
	rcpt, ok := c.ps.Recipient()
	if !ok || rcpt.ID == "" {
		return nil, errParamRequired("recipient")
	}
	t := p.thread(c.caller.page, rcpt.ID, false)
	if t == nil {
		return nil, errNoUser()
	}
	return t, nil
}

func (p *Platform) graphThreadControl(c *graphCall) (any, *messenger.Error) {
	switch c.edge {
	case "pass_thread_control", "take_thread_control", "request_thread_control", "release_thread_control", "extend_thread_control":
	default:
		return nil, errUnknownPath("/" + c.edge)
	}
	t, err := p.callThread(c)
	if err != nil {
		return nil, err
	}
	md := c.ps.String("metadata")
	switch c.edge {
	case "pass_thread_control":
		return success, p.pass(c.caller, t, messenger.ID(c.ps.String("target_app_id")), md)
	case "take_thread_control":
		err, ok := p.take(c.caller, t, md)
		if ok && p.settings.TakeSuccessBody == "thread_owner" {
			return map[string]any{"data": []any{map[string]any{"thread_owner": map[string]any{
				"app_id": t.owner, "expiration": t.expires.Unix(),
			}}}}, nil
		}
		return success, err
	case "request_thread_control":
		return success, p.request(c.caller, t, md)
	case "release_thread_control":
		return success, p.release(c.caller, t, md)
	default:
		secs, perr := strconv.ParseInt(c.ps.String("duration"), 10, 64)
		if perr != nil {
			return nil, errInvalidParameter()
		}
		return success, p.extend(c.caller, t, secs)
	}
}

func (p *Platform) graphThreadOwner(c *graphCall) (any, *messenger.Error) {
	psid := c.ps.String("recipient")
	if psid == "" {
		return nil, errParamRequired("recipient")
	}
	if rcpt, ok := c.ps.Recipient(); ok && rcpt.ID != "" {
		psid = string(rcpt.ID) // tolerate the object form too
	}
	t := p.thread(c.caller.page, messenger.ID(psid), false)
	if t == nil {
		t = &thread{page: c.caller.page, psid: messenger.ID(psid)} // never wrote: idle
		if t.page.mode == ModeLegacy {
			t.owner = t.page.defaultApp
		}
	}
	return p.threadOwnerView(c.caller, t)
}

func (p *Platform) graphSecondaryReceivers(c *graphCall) (any, *messenger.Error) {
	pg := c.caller.page
	if pg.mode != ModeLegacy || !isPrimary(pg, c.caller.app.id) {
		return nil, errNotReceiver()
	}
	data := []messenger.AppInfo{}
	for _, pa := range pg.connectedApps() {
		if !isPrimary(pg, pa.app.id) {
			data = append(data, messenger.AppInfo{ID: pa.app.id, Name: pa.app.name})
		}
	}
	return map[string]any{"data": data}, nil
}

func (p *Platform) graphSubscribedApps(c *graphCall) (any, *messenger.Error) {
	pa := c.caller
	switch c.r.Method {
	case http.MethodGet:
		data := []messenger.SubscribedApp{}
		for _, other := range pa.page.connectedApps() {
			if len(other.subscribed) == 0 {
				continue
			}
			data = append(data, messenger.SubscribedApp{ID: other.app.id, Name: other.app.name, Category: "Business", SubscribedFields: other.fieldList()})
		}
		return map[string]any{"data": data}, nil
	case http.MethodPost:
		fields := c.ps.String("subscribed_fields")
		if fields == "" {
			return nil, errParamRequired("subscribed_fields")
		}
		next := map[string]bool{}
		for f := range strings.SplitSeq(strings.Trim(fields, "[]"), ",") {
			f = strings.Trim(strings.TrimSpace(f), `"`)
			if f == "" {
				continue
			}
			if !knownField(f) {
				return nil, graphError(messenger.CodeInvalidParameter, 0, "(#100) Param subscribed_fields must be one of {"+strings.Join(AllFields, ", ")+"} - got \""+f+"\".")
			}
			next[f] = true
		}
		pa.subscribed = next
		pa.failingSince = time.Time{}
		return success, nil
	case http.MethodDelete:
		pa.subscribed = map[string]bool{}
		return success, nil
	}
	return nil, errUnsupported(strings.ToLower(c.r.Method), string(pa.page.id))
}

func knownField(f string) bool {
	for _, k := range AllFields {
		if k == f {
			return true
		}
	}
	return false
}

func (pa *pageApp) fieldList() []string {
	var out []string
	for _, f := range AllFields {
		if pa.subscribed[f] {
			out = append(out, f)
		}
	}
	return out
}

func (p *Platform) graphNode(c *graphCall) (any, *messenger.Error) {
	pg := c.caller.page
	res := map[string]any{"id": pg.id}
	for f := range strings.SplitSeq(c.ps.String("fields"), ",") {
		switch strings.TrimSpace(f) {
		case "messaging_feature_status":
			res["messaging_feature_status"] = messenger.FeatureStatus{MsgrMultiApp: pg.mode != ModeLegacy}
		case "name":
			res["name"] = pg.name
		}
	}
	return res, nil
}

func (p *Platform) graphSend(c *graphCall) (any, *messenger.Error) {
	var req messenger.SendRequest
	raw, _ := json.Marshal(map[string]any(c.ps))
	if err := json.Unmarshal(raw, &req); err != nil {
		// Query and form callers send objects as JSON text.
		req = messenger.SendRequest{}
		if json.Unmarshal([]byte(c.ps.String("message")), &req.Message) != nil && c.ps.String("message") != "" {
			return nil, graphError(messenger.CodeInvalidParameter, 0, "(#100) param message must be a JSON object")
		}
		req.MessagingType, req.Tag, req.SenderAction = c.ps.String("messaging_type"), c.ps.String("tag"), c.ps.String("sender_action")
		if tc := c.ps.String("thread_control"); tc != "" {
			req.ThreadControl = &messenger.ThreadControl{}
			_ = json.Unmarshal([]byte(tc), req.ThreadControl)
		}
	}
	rcpt, ok := c.ps.Recipient()
	if !ok {
		return nil, errParamRequired("recipient")
	}
	req.Recipient = rcpt
	return p.send(c.caller, &req)
}

// send applies one Send API call. Callers hold p.mu.
func (p *Platform) send(caller *pageApp, req *messenger.SendRequest) (any, *messenger.Error) {
	pg := caller.page
	psid, viaOTN := req.Recipient.ID, false
	if tok := req.Recipient.OneTimeNotifToken; tok != "" {
		o := p.otns[tok]
		if o == nil || o.page != pg.id || o.used || p.now().Sub(o.created) > otnLifetime {
			return nil, graphError(messenger.CodeInvalidParameter, 0, "(#100) Invalid one_time_notif_token")
		}
		psid, viaOTN = o.psid, true
	}
	if req.Message == nil && req.SenderAction == "" {
		return nil, errParamRequired("message")
	}
	if req.Message != nil {
		if req.MessagingType == "" {
			return nil, errParamRequired("messaging_type")
		}
		if req.MessagingType == messenger.MessagingTypeMessageTag && req.Tag == "" {
			return nil, errParamRequired("tag")
		}
		if utf8.RuneCountInString(req.Message.Text) >= maxTextLen || utf8.RuneCountInString(req.Message.Metadata) >= maxSendMetadata {
			return nil, errInvalidParameter()
		}
		if req.Message.Text == "" && req.Message.Attachment == nil {
			return nil, errParamRequired("message.text or message.attachment")
		}
	}
	t := p.thread(pg, psid, false)
	if t == nil {
		return nil, errNoUser()
	}
	if err := p.sendAllowed(caller, t, req.Tag, viaOTN); err != nil {
		return nil, err
	}
	if tc := req.ThreadControl; tc != nil {
		if pg.mode != ModeConversationRouting {
			return nil, errCRNotEnabled()
		}
		// Refuse a pass that cannot happen before anything is sent.
		if tc.ControlType == "pass" {
			target := tc.AppID
			if target == "" {
				target = pg.defaultApp
			}
			if target == caller.app.id {
				return nil, errInvalidParameter()
			}
			if pg.apps[target] == nil {
				return nil, errIncorrectAppID()
			}
		}
	}
	if req.Message == nil { // sender action: no message, no echo
		return map[string]any{"recipient_id": psid}, nil
	}
	if viaOTN {
		p.otns[req.Recipient.OneTimeNotifToken].used = true
	}
	mid := newID("m_")
	p.recordOutbound(t, caller.app, mid, req)
	if tc := req.ThreadControl; tc != nil {
		// Send, then change control, as one call. "release" (the default)
		// sends no webhook.
		switch tc.ControlType {
		case "pass":
			if err := p.pass(caller, t, tc.AppID, ""); err != nil {
				return nil, err
			}
		default:
			if t.owner == caller.app.id {
				t.owner = ""
			}
		}
	}
	out := messenger.SendResponse{MessageID: mid}
	if req.Recipient.ID != "" {
		out.RecipientID = psid
	}
	return out, nil
}

// recordOutbound stores a page message and routes its echo.
func (p *Platform) recordOutbound(t *thread, from *app, mid string, req *messenger.SendRequest) {
	m := req.Message
	t.messages = append(t.messages, ThreadMessage{
		Mid: mid, At: p.now(), Direction: "out", AppID: from.id, App: from.name,
		Text: m.Text, Metadata: m.Metadata, Tag: req.Tag, HasAttach: m.Attachment != nil,
	})
	echo := &messenger.Message{Mid: mid, IsEcho: true, AppID: from.id, Metadata: m.Metadata, Text: m.Text}
	if a := m.Attachment; a != nil {
		var pl messenger.AttachmentPayload
		_ = json.Unmarshal(a.Payload, &pl)
		echo.Attachments = []messenger.Attachment{{Type: a.Type, Payload: pl}}
	}
	p.route(t, messenger.Event{Message: echo}, "message_echoes")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
