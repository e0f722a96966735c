// Package profiles is what the fake platform's pages and people show of
// themselves beyond their threads: the User Profile API (GET /{psid}), the
// Messenger Profile API (/me/messenger_profile, one profile per (page,
// app)), the Attachment Upload API (/me/message_attachments) and the
// Personas API (/me/personas, /{persona-id}). Shapes and words are Meta's
// reference pages for each
// (developers.facebook.com/docs/messenger-platform/...).
//
// The Graph API (package messengertest) resolves the caller and hands a
// Request here; the only thing these calls need of the platform's world is
// whether a person has a thread with the page (World).
package profiles

import (
	"crypto/rand"
	"encoding/json"
	"hash/fnv"
	"math/big"
	"net/http"
	"strings"
	"sync"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// World is what the profiles need of the platform's world. Its methods
// take the world's lock themselves: Media calls them without holding its
// own.
type World interface {
	// HasPerson reports whether psid has a thread with the page (applying
	// any expiry that is due, as every look at a thread does): only such
	// a person's profile is the page's to read.
	HasPerson(page, psid messenger.ID) bool
}

// Request is one Graph call for this package, from a caller the Graph API
// has already identified by its page access token.
type Request struct {
	Method string
	Edge   string // "" for a node
	Params messenger.Params
	Page   messenger.ID // the caller's page
	App    messenger.ID // the caller's app
	// Instagram is set when the page is an Instagram professional
	// account, whose people have Instagram's profile fields.
	Instagram bool
}

// Media is every page's messenger profiles, uploaded attachments and
// personas, under its own lock. The Graph API may call CheckSend with the
// world's lock held; Media never takes the world's lock while it holds
// its own, so the order is always world, then Media.
type Media struct {
	world World
	mu    sync.Mutex
	pages map[messenger.ID]*pageMedia
}

// New returns empty media over w.
func New(w World) *Media {
	return &Media{world: w, pages: map[messenger.ID]*pageMedia{}}
}

// pageMedia is one page's messenger profiles (one per app), uploaded
// attachments and personas.
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

var success = map[string]bool{"success": true}

// of returns the page's media, made on first use. Callers hold m.mu.
func (m *Media) of(page messenger.ID) *pageMedia {
	pm := m.pages[page]
	if pm == nil {
		pm = &pageMedia{profiles: map[messenger.ID]map[string]json.RawMessage{}, attachments: map[string]bool{}, personas: map[string]*persona{}}
		m.pages[page] = pm
	}
	return pm
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

// IsEdge reports whether Edge serves the page edge.
func IsEdge(edge string) bool {
	switch edge {
	case "messenger_profile", "message_attachments", "personas":
		return true
	}
	return false
}

// Edge serves /me/messenger_profile, /me/message_attachments and
// /me/personas.
func (m *Media) Edge(req Request) (any, *messenger.Error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pm := m.of(req.Page)
	switch {
	case req.Edge == "messenger_profile" && req.Method == http.MethodGet:
		return pm.getProfile(req)
	case req.Edge == "messenger_profile" && req.Method == http.MethodPost:
		return pm.setProfile(req)
	case req.Edge == "messenger_profile" && req.Method == http.MethodDelete:
		return pm.deleteProfile(req)
	case req.Edge == "message_attachments" && req.Method == http.MethodPost:
		return pm.upload(req)
	case req.Edge == "personas" && req.Method == http.MethodPost:
		return pm.createPersona(req)
	case req.Edge == "personas" && req.Method == http.MethodGet:
		return pm.listPersonas(req)
	}
	return nil, metaerr.Unsupported(strings.ToLower(req.Method), string(req.Page))
}

// Object serves a node that is not the caller's page: a person who has a
// thread with the page (GET, the User Profile API) or one of the page's
// personas (GET, DELETE). Any other id is 100/33, as Meta answers for an
// object the token may not see.
func (m *Media) Object(req Request, node string) (any, *messenger.Error) {
	if req.Edge != "" {
		return nil, metaerr.Unsupported(strings.ToLower(req.Method), node)
	}
	// Asked before m.mu is taken: the world's lock comes first.
	if req.Method == http.MethodGet && m.world.HasPerson(req.Page, messenger.ID(node)) {
		return userProfile(req, messenger.ID(node))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	pm := m.of(req.Page)
	switch req.Method {
	case http.MethodGet:
		if p := pm.personas[node]; p != nil {
			return pickFields(req.Params.String("fields"), "id,name,profile_picture_url", "Persona", nil, map[string]any{
				"id": p.ID, "name": p.Name, "profile_picture_url": p.ProfilePictureURL,
			})
		}
	case http.MethodDelete:
		if pm.personas[node] != nil {
			delete(pm.personas, node)
			return success, nil
		}
	}
	return nil, metaerr.Unsupported(strings.ToLower(req.Method), node)
}

// userProfile is the person's profile as the page sees it.
func userProfile(req Request, psid messenger.ID) (any, *messenger.Error) {
	first, last := PersonName(psid)
	pic := "https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=" + string(psid)
	fields := req.Params.String("fields")
	if req.Instagram {
		// Instagram's User Profile API has its own fields.
		return pickFields(fields, "id,name", "User", nil, map[string]any{
			"id": psid, "name": first + " " + last, "username": strings.ToLower(first + "_" + last), "profile_pic": pic,
			"follower_count": 0, "is_user_follow_business": false, "is_business_follow_user": false, "is_verified_user": false,
		})
	}
	// gender: the fake's people do not share it, so it is never answered.
	return pickFields(fields, "id,name", "User", []string{"gender"}, map[string]any{
		"id": psid, "name": first + " " + last, "first_name": first, "last_name": last, "profile_pic": pic,
		"locale": "en_US", "timezone": 0,
	})
}

// CheckSend refuses a send that names an attachment or a persona the page
// does not have.
func (m *Media) CheckSend(page messenger.ID, req *messenger.SendRequest) *messenger.Error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.of(page).checkSend(req)
}

// PersonaName is the name of the page's persona id, "" when it has none:
// what the person sees a reply sent with that persona come from.
func (m *Media) PersonaName(page messenger.ID, id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.of(page).personas[id]; p != nil {
		return p.Name
	}
	return ""
}

// numericID is a new Graph object id: 16 digits.
func numericID() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(9e15))
	return n.Add(n, big.NewInt(1e15)).String()
}

// maxUploadBody is Meta's limit on an attachment upload: 25 MB.
const maxUploadBody = 25 << 20

// BodyLimit is how much of a Graph call's body is read: an upload's
// multipart body may be as large as Meta takes, any other body limit.
func BodyLimit(r *http.Request, limit int64) int64 {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		return maxUploadBody
	}
	return limit
}
