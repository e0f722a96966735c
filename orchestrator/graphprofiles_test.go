package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// A second page for support-bot alone, with a Baton token of its own for
// support-bot there, and a person on it.
const (
	profilePage = "100200300400502"
	psid2       = "7223456789012345"
)

func init() { env["SUPPORT_API_PAGE2"] = "support-api-token-page-2" }

func newTwoPageHarness(t *testing.T) *harness {
	h := newHarnessWith(t, func(c *messengertest.Config) {
		c.Pages = append(c.Pages, messengertest.PageConfig{ID: profilePage, Mode: messengertest.ModeConversationRouting, DefaultApp: "support-bot",
			Apps: map[string]messengertest.PageAppConfig{"support-bot": {Token: "PT_SUPPORT_2", Takeover: true}}})
	}, func(yaml *string) {
		*yaml += `  - id: "` + profilePage + `"
    mode: conversation_routing
    primary: support-bot
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT_2, api_token_env: SUPPORT_API_PAGE2}
`
	})
	h.say("hi")
	h.support.next()
	if st := h.do("POST", h.platURL+"/_platform/pages/"+profilePage+"/users/"+psid2+"/messages?wait=true", "", map[string]string{"text": "hello"}, nil); st != 200 {
		t.Fatalf("say on the second page: %d", st)
	}
	h.support.next()
	return h
}

// graphCall makes a raw call to Baton's /graph and decodes the answer; a
// token of "" sends none.
func graphCall(t *testing.T, h *harness, method, path, token string, body any, out any) int {
	t.Helper()
	return h.do(method, h.baton+"/graph"+path, token, body, out)
}

// wantMetaErr checks a raw answer's Meta error.
func wantMetaErr(t *testing.T, what string, st int, env messenger.ErrorEnvelope, code, subcode int, contains string) {
	t.Helper()
	if st != http.StatusBadRequest || env.Error == nil || env.Error.Code != code || env.Error.Subcode != subcode || !strings.Contains(env.Error.Message, contains) || env.Error.FBTraceID == "" {
		t.Errorf("%s: %d %+v, want %d/%d %q", what, st, env.Error, code, subcode, contains)
	}
}

// callsOn counts the platform's calls whose path names node.
func callsOn(h *harness, node string) int {
	n := 0
	for _, c := range h.platform.Calls() {
		if strings.Contains(c.Path, node) {
			n++
		}
	}
	return n
}

// The User Profile API through Baton: a PSID Baton has a thread with is
// read with the page's token; anything else never reaches Meta.
func TestGraphUserProfile(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	first, last := messengertest.PersonName(psid)
	for _, tok := range []string{env["SUPPORT_API"], env["BILLING_API"]} {
		var p map[string]any
		if st := graphCall(t, h, "GET", "/v6.0/"+psid+"?fields=first_name,last_name,profile_pic", tok, nil, &p); st != 200 || p["first_name"] != first || p["last_name"] != last || p["profile_pic"] == "" {
			t.Fatalf("profile: %d %v, want %s %s", st, p, first, last)
		}
	}
	var p map[string]any
	if st := graphCall(t, h, "GET", "/"+psid, env["SUPPORT_API"], nil, &p); st != 200 || p["name"] != first+" "+last || len(p) != 2 {
		t.Fatalf("no fields: %d %v (want Meta's id and name)", st, p)
	}
	if c := h.platform.Calls(); c[len(c)-1].App != "support-bot" || c[len(c)-1].PageID != pageID {
		t.Fatalf("the profile was read as %+v", c[len(c)-1])
	}

	const stranger = "7999999999999999"
	calls := callsOn(h, psid)
	for _, c := range []struct {
		what, method, path string
		code, sub          int
		msg                string
	}{
		{"a PSID Baton has no thread with", "GET", "/v21.0/" + stranger + "?fields=first_name", 100, 33, "Unsupported get request. Object with ID '" + stranger + "'"},
		{"a field not on the allow-list", "GET", "/v21.0/" + psid + "?fields=first_name,email", 200, 0, "field email is not available through Baton"},
		{"a nested field not on the allow-list", "GET", "/v21.0/" + psid + "?fields=friends{name}", 200, 0, "field friends"},
		{"an edge of a person", "GET", "/v21.0/" + psid + "/conversations", 100, 33, "Unsupported get request"},
		{"a write to a person", "POST", "/v21.0/" + psid, 100, 33, "Unsupported post request"},
		{"a delete of a person", "DELETE", "/v21.0/" + psid, 100, 33, "Unsupported delete request"},
	} {
		var out messenger.ErrorEnvelope
		st := graphCall(t, h, c.method, c.path, env["SUPPORT_API"], nil, &out)
		wantMetaErr(t, c.what, st, out, c.code, c.sub, c.msg)
	}
	if n := callsOn(h, psid) - calls + callsOn(h, stranger); n != 0 {
		t.Fatalf("%d refused calls on a person reached Meta", n)
	}
}

// The Messenger Profile API passes through, in JSON, with DELETE's fields
// in its body.
func TestGraphMessengerProfile(t *testing.T) {
	h := newHarness(t)
	tok := env["SUPPORT_API"]
	var res map[string]any
	set := map[string]any{
		"get_started": map[string]string{"payload": "GET_STARTED"},
		"greeting":    []map[string]string{{"locale": "default", "text": "Hi {{user_first_name}}"}},
	}
	if st := graphCall(t, h, "POST", "/v6.0/me/messenger_profile", tok, set, &res); st != 200 || res["result"] != "success" {
		t.Fatalf("set: %d %v", st, res)
	}
	var got struct{ Data []map[string]json.RawMessage }
	graphCall(t, h, "GET", "/v6.0/me/messenger_profile?fields=get_started,greeting", tok, nil, &got)
	if len(got.Data) != 1 || string(got.Data[0]["get_started"]) != `{"payload":"GET_STARTED"}` || got.Data[0]["greeting"] == nil {
		t.Fatalf("get: %+v", got)
	}
	if st := graphCall(t, h, "DELETE", "/v6.0/"+pageID+"/messenger_profile", tok, map[string][]string{"fields": {"greeting"}}, &res); st != 200 || res["result"] != "success" {
		t.Fatalf("delete: %d %v", st, res)
	}
	got.Data = nil
	graphCall(t, h, "GET", "/v6.0/me/messenger_profile?fields=get_started,greeting", tok, nil, &got)
	if len(got.Data) != 1 || got.Data[0]["greeting"] != nil || got.Data[0]["get_started"] == nil {
		t.Fatalf("after delete: %+v", got)
	}
	// billing-bot's profile on the same page is its own.
	got.Data = nil
	graphCall(t, h, "GET", "/v6.0/me/messenger_profile?fields=get_started", env["BILLING_API"], nil, &got)
	if len(got.Data) != 0 {
		t.Fatalf("billing-bot reads %+v", got)
	}
}

// Attachments (by URL and as a file), personas and /me on an app with two
// pages, through Baton to the fake.
func TestGraphAttachmentsPersonasAndMe(t *testing.T) {
	h := newTwoPageHarness(t)
	support, page2 := env["SUPPORT_API"], env["SUPPORT_API_PAGE2"]

	// /me with nothing to tell the pages apart: an error that says what to do.
	upload := map[string]any{"message": map[string]any{"attachment": map[string]any{"type": "image", "payload": map[string]any{"url": "https://example.com/cat.png", "is_reusable": true}}}}
	var amb messenger.ErrorEnvelope
	st := graphCall(t, h, "POST", "/v21.0/me/message_attachments", support, upload, &amb)
	wantMetaErr(t, "/me on two pages", st, amb, 100, 0, "api_token_env")

	// The page's own Baton token says which page /me is.
	var up struct {
		AttachmentID string `json:"attachment_id"`
	}
	if st := graphCall(t, h, "POST", "/v21.0/me/message_attachments", page2, upload, &up); st != 200 || up.AttachmentID == "" {
		t.Fatalf("upload with the page's token: %d %+v", st, up)
	}
	if c := h.platform.Calls(); c[len(c)-1].PageID != profilePage {
		t.Fatalf("uploaded to %s", c[len(c)-1].PageID)
	}
	var out messenger.ErrorEnvelope
	st = graphCall(t, h, "GET", "/v21.0/"+pageID+"/personas", page2, nil, &out)
	wantMetaErr(t, "a page's token on another page", st, out, 100, 33, "Unsupported get request")

	// A file, multipart, the Baton token in the body: forwarded as it came,
	// less the token.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("access_token", support)
	_ = mw.WriteField("message", `{"attachment":{"type":"image","payload":{"is_reusable":true}}}`)
	fw, _ := mw.CreateFormFile("filedata", "cat.png")
	_, _ = fw.Write(bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 300_000)) // over the 1 MiB of other calls
	_ = mw.Close()
	req, _ := http.NewRequest("POST", h.baton+"/graph/v21.0/"+pageID+"/message_attachments", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var file struct {
		AttachmentID string `json:"attachment_id"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(raw, &file) != nil || file.AttachmentID == "" {
		t.Fatalf("multipart upload: %d %s", resp.StatusCode, raw)
	}
	if c := h.platform.Calls(); c[len(c)-1].Params["filedata"] != "cat.png" || c[len(c)-1].PageID != pageID {
		t.Fatalf("the platform got %+v", c[len(c)-1])
	}

	// Personas: made on each page, found on its own page only.
	var p1, p2 struct{ ID string }
	if st := graphCall(t, h, "POST", "/v21.0/"+pageID+"/personas", support, map[string]string{"name": "Ana", "profile_picture_url": "https://example.com/ana.png"}, &p1); st != 200 || p1.ID == "" {
		t.Fatalf("persona on page 1: %d %+v", st, p1)
	}
	if st := graphCall(t, h, "POST", "/v21.0/me/personas", page2, map[string]string{"name": "Bo", "profile_picture_url": "https://example.com/bo.png"}, &p2); st != 200 || p2.ID == "" {
		t.Fatalf("persona on page 2: %d %+v", st, p2)
	}
	var one map[string]string
	if st := graphCall(t, h, "GET", "/v21.0/"+p1.ID, support, nil, &one); st != 200 || one["name"] != "Ana" {
		t.Fatalf("get persona: %d %v", st, one)
	}
	out = messenger.ErrorEnvelope{}
	st = graphCall(t, h, "GET", "/v21.0/"+p1.ID, page2, nil, &out)
	wantMetaErr(t, "a persona of another page", st, out, 100, 33, "'"+p1.ID+"'")
	out = messenger.ErrorEnvelope{}
	st = graphCall(t, h, "GET", "/v21.0/"+p1.ID+"?fields=name,access_token", support, nil, &out)
	wantMetaErr(t, "a persona field not on the allow-list", st, out, 200, 0, "access_token")
	if n := callsOn(h, "/"+p1.ID); n != 1 {
		t.Fatalf("%d calls on the persona reached Meta, want the one allowed", n)
	}

	// A send by /me: the recipient's thread says which page; attachment
	// and persona go with it.
	g := graphAs(t, h, "v21.0")
	msg := &messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: messenger.MessagingTypeResponse, PersonaID: p1.ID,
		Message: &messenger.OutgoingMessage{Attachment: &messenger.OutgoingAttachment{Type: "image", Payload: json.RawMessage(`{"attachment_id":"` + file.AttachmentID + `"}`)}}}
	if _, err := g.Send(context.Background(), messenger.Credentials{AccessToken: support}, msg); err != nil {
		t.Fatalf("send on page 1 by /me: %v", err)
	}
	if st, _ := h.platform.Thread(pageID, psid); !st.Messages[len(st.Messages)-1].HasAttach {
		t.Fatalf("page 1 thread %+v", st.Messages)
	}
	msg.Recipient.ID, msg.PersonaID = psid2, p2.ID
	msg.Message.Attachment.Payload = json.RawMessage(`{"attachment_id":"` + up.AttachmentID + `"}`)
	if _, err := g.Send(context.Background(), messenger.Credentials{AccessToken: support}, msg); err != nil {
		t.Fatalf("send on page 2 by /me: %v", err)
	}
	if st, _ := h.platform.Thread(profilePage, psid2); !st.Messages[len(st.Messages)-1].HasAttach {
		t.Fatalf("page 2 thread %+v", st.Messages)
	}
	msg.Recipient.ID = "7999999999999999"
	_, err = g.Send(context.Background(), messenger.Credentials{AccessToken: support}, msg)
	wantErr(t, err, 100, 0, "")

	// Delete a persona: success, then it is gone.
	var ok map[string]bool
	if st := graphCall(t, h, "DELETE", "/v21.0/"+p1.ID, support, nil, &ok); st != 200 || !ok["success"] {
		t.Fatalf("delete persona: %d %v", st, ok)
	}
	out = messenger.ErrorEnvelope{}
	st = graphCall(t, h, "GET", "/v21.0/"+p1.ID, support, nil, &out)
	wantMetaErr(t, "a deleted persona", st, out, 100, 33, "Unsupported get request")
}

// An Instagram user's profile has Instagram's fields: username yes,
// Messenger's first_name no.
func TestGraphInstagramProfile(t *testing.T) {
	h := newHarnessWith(t, func(c *messengertest.Config) {
		c.Pages = append(c.Pages, messengertest.PageConfig{ID: igAccount, Platform: messengertest.PlatformInstagram, Mode: messengertest.ModeConversationRouting,
			DefaultApp: "support-bot", Apps: map[string]messengertest.PageAppConfig{"support-bot": {Token: "PT_SUPPORT_2", Takeover: true}}})
	}, func(yaml *string) {
		instagramPage(yaml)
		*yaml = strings.Replace(*yaml, "platform: instagram\n    primary: support-bot\n    secondary: [ig-inbox]\n    tokens:\n      support-bot: {token_env: PAGE_TOKEN_SUPPORT}",
			"platform: instagram\n    primary: support-bot\n    secondary: [ig-inbox]\n    tokens:\n      support-bot: {token_env: PAGE_TOKEN_SUPPORT_2}", 1)
	})
	if st := h.do("POST", h.platURL+"/_platform/pages/"+igAccount+"/users/"+igScoped+"/messages?wait=true", "", map[string]string{"text": "hola"}, nil); st != 200 {
		t.Fatalf("say on Instagram: %d", st)
	}
	h.support.next()
	var p map[string]any
	if st := graphCall(t, h, "GET", "/v21.0/"+igScoped+"?fields=name,username,profile_pic", env["SUPPORT_API"], nil, &p); st != 200 || p["username"] == nil {
		t.Fatalf("Instagram profile: %d %v", st, p)
	}
	if c := h.platform.Calls(); c[len(c)-1].PageID != igAccount {
		t.Fatalf("read with the token of %s", c[len(c)-1].PageID)
	}
	var out messenger.ErrorEnvelope
	st := graphCall(t, h, "GET", "/v21.0/"+igScoped+"?fields=first_name", env["SUPPORT_API"], nil, &out)
	wantMetaErr(t, "a Messenger field of an Instagram user", st, out, 200, 0, "field first_name")
}
