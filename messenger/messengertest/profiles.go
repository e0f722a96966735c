package messengertest

import (
	"crypto/rand"
	"encoding/json"
	"hash/fnv"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// What a page's apps set up beyond its threads, and the people's
// profiles: the User Profile API (GET /{psid}), the Messenger Profile API
// (/me/messenger_profile), the Attachment Upload API
// (/me/message_attachments) and the Personas API (/me/personas,
// /{persona-id}). Shapes and words are Meta's reference pages for each
// (developers.facebook.com/docs/messenger-platform/...).

// pageMedia is one page's messenger profiles (one per app), uploaded
// attachments and personas. The world holds it under w.mu.
type pageMedia struct {
	profiles    map[messenger.ID]map[string]json.RawMessage // app id -> property -> value
	attachments map[string]bool
	personas    map[string]*persona
}

type persona struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	ProfilePictureURL string `json:"profile_picture_url"`
}

// profileProperties are the Messenger Profile's properties.
var profileProperties = []string{"account_linking_url", "commands", "get_started", "greeting", "ice_breakers", "persistent_menu", "whitelisted_domains"}

// mediaOf returns the page's media, made on first use. Callers hold w.mu.
func (w *world) mediaOf(pg *page) *pageMedia {
	m := w.media[pg.id]
	if m == nil {
		m = &pageMedia{profiles: map[messenger.ID]map[string]json.RawMessage{}, attachments: map[string]bool{}, personas: map[string]*persona{}}
		w.media[pg.id] = m
	}
	return m
}

var (
	firstNames = []string{"Ada", "Bruno", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemi", "Lucia"}
	lastNames  = []string{"Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Keller", "Rossi", "Walsh"}
)

// PersonName is the name the platform gives the person psid: the same on
// every run, so that a test knows what a bot will read.
func PersonName(psid messenger.ID) (first, last string) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(psid))
	n := h.Sum32()
	return firstNames[n%uint32(len(firstNames))], lastNames[(n/7)%uint32(len(lastNames))]
}

// isProfileEdge reports whether profileEdge serves the edge.
func isProfileEdge(edge string) bool {
	switch edge {
	case "messenger_profile", "message_attachments", "personas":
		return true
	}
	return false
}

// profileEdge serves /me/messenger_profile, /me/message_attachments and
// /me/personas. Callers hold w.mu.
func (g *graphAPI) profileEdge(c *graphCall) (any, *messenger.Error) {
	m := g.w.mediaOf(c.caller.page)
	method := c.r.Method
	switch {
	case c.edge == "messenger_profile" && method == http.MethodGet:
		return m.getProfile(c)
	case c.edge == "messenger_profile" && method == http.MethodPost:
		return m.setProfile(c)
	case c.edge == "messenger_profile" && method == http.MethodDelete:
		return m.deleteProfile(c)
	case c.edge == "message_attachments" && method == http.MethodPost:
		return m.upload(c)
	case c.edge == "personas" && method == http.MethodPost:
		return m.createPersona(c)
	case c.edge == "personas" && method == http.MethodGet:
		return m.listPersonas(c)
	}
	return nil, metaerr.Unsupported(strings.ToLower(method), string(c.caller.page.id))
}

// objectNode serves a node that is not the caller's page: a person who has
// a thread with the page (GET, the User Profile API) or one of the page's
// personas (GET, DELETE). Any other id is 100/33, as Meta answers for an
// object the token may not see. Callers hold w.mu.
func (g *graphAPI) objectNode(c *graphCall, node string) (any, *messenger.Error) {
	pg := c.caller.page
	if c.edge != "" {
		return nil, metaerr.Unsupported(strings.ToLower(c.r.Method), node)
	}
	m := g.w.mediaOf(pg)
	switch c.r.Method {
	case http.MethodGet:
		if t := g.w.thread(pg, messenger.ID(node), false); t != nil {
			return userProfile(c, t)
		}
		if p := m.personas[node]; p != nil {
			return pickFields(c.ps.String("fields"), "id,name,profile_picture_url", "Persona", nil, map[string]any{
				"id": p.ID, "name": p.Name, "profile_picture_url": p.ProfilePictureURL,
			})
		}
	case http.MethodDelete:
		if m.personas[node] != nil {
			delete(m.personas, node)
			return success, nil
		}
	}
	return nil, metaerr.Unsupported(strings.ToLower(c.r.Method), node)
}

// userProfile is the person's profile as the page sees it.
func userProfile(c *graphCall, t *thread) (any, *messenger.Error) {
	first, last := PersonName(t.psid)
	pic := "https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=" + string(t.psid)
	if t.page.instagram {
		// Instagram's User Profile API has its own fields.
		return pickFields(c.ps.String("fields"), "id,name", "User", nil, map[string]any{
			"id": t.psid, "name": first + " " + last, "username": strings.ToLower(first + "_" + last), "profile_pic": pic,
			"follower_count": 0, "is_user_follow_business": false, "is_business_follow_user": false, "is_verified_user": false,
		})
	}
	// gender: the fake's people do not share it, so it is never answered.
	return pickFields(c.ps.String("fields"), "id,name", "User", []string{"gender"}, map[string]any{
		"id": t.psid, "name": first + " " + last, "first_name": first, "last_name": last, "profile_pic": pic,
		"locale": "en_US", "timezone": 0,
	})
}

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
func listParam(ps params, k string) []string {
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
func (m *pageMedia) getProfile(c *graphCall) (any, *messenger.Error) {
	fields := listParam(c.ps, "fields")
	if len(fields) == 0 {
		return nil, metaerr.ParamRequired("fields")
	}
	mine := m.profiles[c.caller.app.id]
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
func (m *pageMedia) setProfile(c *graphCall) (any, *messenger.Error) {
	set := map[string]json.RawMessage{}
	for _, p := range profileProperties {
		v, ok := c.ps[p]
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
	mine := m.profiles[c.caller.app.id]
	if mine == nil {
		mine = map[string]json.RawMessage{}
		m.profiles[c.caller.app.id] = mine
	}
	for k, v := range set {
		mine[k] = v
	}
	return map[string]string{"result": "success"}, nil
}

// deleteProfile removes the properties named in `fields`.
func (m *pageMedia) deleteProfile(c *graphCall) (any, *messenger.Error) {
	fields := listParam(c.ps, "fields")
	if len(fields) == 0 {
		return nil, metaerr.ParamRequired("fields")
	}
	for _, f := range fields {
		if !knownProperty(f) {
			return nil, badProperty(f)
		}
	}
	for _, f := range fields {
		delete(m.profiles[c.caller.app.id], f)
	}
	return map[string]string{"result": "success"}, nil
}

// upload keeps an attachment, by URL (JSON or form) or as a file
// (multipart filedata), and answers its id for later sends.
func (m *pageMedia) upload(c *graphCall) (any, *messenger.Error) {
	var msg struct {
		Attachment *struct {
			Type    string `json:"type"`
			Payload struct {
				URL string `json:"url"`
			} `json:"payload"`
		} `json:"attachment"`
	}
	raw := []byte(c.ps.String("message"))
	if len(raw) == 0 || json.Unmarshal(raw, &msg) != nil || msg.Attachment == nil {
		return nil, metaerr.ParamRequired("message")
	}
	switch msg.Attachment.Type {
	case "image", "audio", "video", "file":
	default:
		return nil, metaerr.New(messenger.CodeInvalidParameter, 0, "(#100) Param message[attachment][type] must be one of {image, audio, video, file}")
	}
	_, isFile := c.ps["filedata"].(messenger.FilePart)
	if msg.Attachment.Payload.URL == "" && !isFile {
		return nil, metaerr.ParamRequired("message[attachment][payload][url] or filedata")
	}
	id := numericID()
	m.attachments[id] = true
	return map[string]string{"attachment_id": id}, nil
}

func (m *pageMedia) createPersona(c *graphCall) (any, *messenger.Error) {
	name, pic := c.ps.String("name"), c.ps.String("profile_picture_url")
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
func (m *pageMedia) listPersonas(c *graphCall) (any, *messenger.Error) {
	ids := make([]string, 0, len(m.personas))
	for id := range m.personas {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	limit := 25
	if n, err := json.Number(c.ps.String("limit")).Int64(); err == nil && n > 0 && n <= 100 {
		limit = int(n)
	}
	start := 0
	if after := c.ps.String("after"); after != "" {
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
			paging["next"] = "https://graph.facebook.com/v21.0/" + string(c.caller.page.id) + "/personas?limit=" + strconv.Itoa(limit) + "&after=" + data[len(data)-1].ID
		}
		out["paging"] = paging
	}
	return out, nil
}

// checkSendMedia refuses a send that names an attachment or a persona the
// page does not have. Callers hold w.mu.
func (w *world) checkSendMedia(pg *page, req *messenger.SendRequest) *messenger.Error {
	m := w.mediaOf(pg)
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

// numericID is a new Graph object id: 16 digits.
func numericID() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(9e15))
	return n.Add(n, big.NewInt(1e15)).String()
}

// maxUploadBody is Meta's limit on an attachment upload: 25 MB.
const maxUploadBody = 25 << 20

// bodyLimit is how much of a Graph call's body is read: an upload's
// multipart body may be as large as Meta takes.
func bodyLimit(r *http.Request) int64 {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		return maxUploadBody
	}
	return maxGraphBody
}
