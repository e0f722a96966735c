package profiles

import (
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// profileProperties are the Messenger Profile's properties.
var profileProperties = []string{"account_linking_url", "commands", "get_started", "greeting", "ice_breakers", "persistent_menu", "whitelisted_domains"}

// pickFields answers the fields asked for (def when none), leaving out
// those unshared; any other field is Meta's error for a field the node
// type does not have.
func pickFields(fields, def, nodeType string, unshared []string, all map[string]any) (any, *messenger.Error) {
	if fields == "" {
		fields = def
	}
	out := map[string]any{}
	for f := range strings.SplitSeq(fields, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, ok := all[f]
		switch {
		case ok:
			out[f] = v
		case !slices.Contains(unshared, f):
			return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) Tried accessing nonexisting field ("+f+") on node type ("+nodeType+")")
		}
	}
	return out, nil
}

// listParam reads a list parameter sent as a JSON array, or as text: a
// JSON array or comma-separated names.
func listParam(ps messenger.Params, k string) []string {
	var out []string
	switch v := ps[k].(type) {
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	s := strings.TrimSpace(ps.String(k))
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &out) == nil {
		return out
	}
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func knownProperty(name string) bool { return slices.Contains(profileProperties, name) }

func badProperty(name string) *messenger.Error {
	return metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) Param fields["+name+"] must be one of {"+strings.Join(profileProperties, ", ")+"}")
}

// getProfile answers GET messenger_profile?fields=...: {"data":[{...}]}
// with the properties of the caller's profile that are set, or
// {"data":[]} when none is.
func (m *pageMedia) getProfile(req Request) (any, *messenger.Error) {
	fields := listParam(req.Params, "fields")
	if len(fields) == 0 {
		return nil, metaerr.ParamRequired("fields")
	}
	mine := m.profiles[req.App]
	got := map[string]json.RawMessage{}
	for _, f := range fields {
		if !knownProperty(f) {
			return nil, badProperty(f)
		}
		if v, ok := mine[f]; ok {
			got[f] = v
		}
	}
	if len(got) == 0 {
		return map[string]any{"data": []any{}}, nil
	}
	return map[string]any{"data": []any{got}}, nil
}

// setProfile sets the properties the body names, leaving the others.
func (m *pageMedia) setProfile(req Request) (any, *messenger.Error) {
	set := map[string]json.RawMessage{}
	for _, p := range profileProperties {
		v, ok := req.Params[p]
		if !ok {
			continue
		}
		raw, _ := json.Marshal(v)
		if s, isText := v.(string); isText && json.Valid([]byte(s)) && strings.ContainsAny(s[:1], "[{") {
			raw = json.RawMessage(s) // a form or query sends objects as JSON text
		}
		set[p] = raw
	}
	if len(set) == 0 {
		return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) Requires one of the params: "+strings.Join(profileProperties, ", "))
	}
	mine := m.profiles[req.App]
	if mine == nil {
		mine = map[string]json.RawMessage{}
		m.profiles[req.App] = mine
	}
	for k, v := range set {
		mine[k] = v
	}
	return map[string]string{"result": "success"}, nil
}

// deleteProfile removes the properties named in `fields`.
func (m *pageMedia) deleteProfile(req Request) (any, *messenger.Error) {
	fields := listParam(req.Params, "fields")
	if len(fields) == 0 {
		return nil, metaerr.ParamRequired("fields")
	}
	for _, f := range fields {
		if !knownProperty(f) {
			return nil, badProperty(f)
		}
	}
	for _, f := range fields {
		delete(m.profiles[req.App], f)
	}
	return map[string]string{"result": "success"}, nil
}

// upload keeps an attachment, by URL (JSON or form) or as a file
// (multipart filedata), and answers its id for later sends.
func (m *pageMedia) upload(req Request) (any, *messenger.Error) {
	var msg struct {
		Attachment *struct {
			Type    string `json:"type"`
			Payload struct {
				URL string `json:"url"`
			} `json:"payload"`
		} `json:"attachment"`
	}
	raw := []byte(req.Params.String("message"))
	if len(raw) == 0 || json.Unmarshal(raw, &msg) != nil || msg.Attachment == nil {
		return nil, metaerr.ParamRequired("message")
	}
	switch msg.Attachment.Type {
	case "image", "audio", "video", "file":
	default:
		return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) Param message[attachment][type] must be one of {image, audio, video, file}")
	}
	_, isFile := req.Params["filedata"].(messenger.FilePart)
	if msg.Attachment.Payload.URL == "" && !isFile {
		return nil, metaerr.ParamRequired("message[attachment][payload][url] or filedata")
	}
	id := numericID()
	m.attachments[id] = true
	return map[string]string{"attachment_id": id}, nil
}

func (m *pageMedia) createPersona(req Request) (any, *messenger.Error) {
	name, pic := req.Params.String("name"), req.Params.String("profile_picture_url")
	switch {
	case name == "":
		return nil, metaerr.ParamRequired("name")
	case pic == "":
		return nil, metaerr.ParamRequired("profile_picture_url")
	}
	p := &persona{ID: numericID(), Name: name, ProfilePictureURL: pic}
	m.personas[p.ID] = p
	return map[string]string{"id": p.ID}, nil
}

// listPersonas answers a page of the page's personas in id order, `limit`
// at a time (25 by default) after the `after` cursor, with Meta's paging:
// cursors, and `next` while more remain.
func (m *pageMedia) listPersonas(req Request) (any, *messenger.Error) {
	ids := make([]string, 0, len(m.personas))
	for id := range m.personas {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	limit := 25
	if n, err := json.Number(req.Params.String("limit")).Int64(); err == nil && n > 0 && n <= 100 {
		limit = int(n)
	}
	start := 0
	if after := req.Params.String("after"); after != "" {
		start = sort.SearchStrings(ids, after)
		if start < len(ids) && ids[start] == after {
			start++
		}
	}
	data := []*persona{}
	for i := start; i < len(ids) && len(data) < limit; i++ {
		data = append(data, m.personas[ids[i]])
	}
	out := map[string]any{"data": data}
	if len(data) > 0 {
		paging := map[string]any{"cursors": map[string]string{"before": data[0].ID, "after": data[len(data)-1].ID}}
		if start+len(data) < len(ids) {
			paging["next"] = "https://graph.facebook.com/v21.0/" + string(req.Page) + "/personas?limit=" + strconv.Itoa(limit) + "&after=" + data[len(data)-1].ID
		}
		out["paging"] = paging
	}
	return out, nil
}

// checkSend refuses a send that names an attachment or a persona the page
// does not have.
func (m *pageMedia) checkSend(req *messenger.SendRequest) *messenger.Error {
	if req.PersonaID != "" && m.personas[req.PersonaID] == nil {
		return metaerr.InvalidParameter()
	}
	if req.Message == nil || req.Message.Attachment == nil {
		return nil
	}
	var pl struct {
		AttachmentID json.Number `json:"attachment_id"`
	}
	if json.Unmarshal(req.Message.Attachment.Payload, &pl) == nil && pl.AttachmentID != "" && !m.attachments[pl.AttachmentID.String()] {
		return metaerr.InvalidParameter()
	}
	return nil
}
