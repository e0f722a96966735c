package messengertest_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// graphErr is the error envelope of a raw Graph answer.
type graphErr struct {
	Error *messenger.Error `json:"error"`
}

func TestUserProfile(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	first, last := messengertest.PersonName(psid)
	var got map[string]any
	if st := e.ctlGraph("GET", "/v6.0/"+psid+"?fields=first_name,last_name,profile_pic,gender&access_token="+tokenA, "", &got); st != 200 {
		t.Fatalf("profile: %d %v", st, got)
	}
	if got["first_name"] != first || got["last_name"] != last || !strings.Contains(got["profile_pic"].(string), psid) || got["gender"] != nil {
		t.Fatalf("profile %v, want %s %s", got, first, last)
	}
	if f2, _ := messengertest.PersonName(psid); f2 != first {
		t.Fatal("a person's name changes between calls")
	}
	got = nil
	if st := e.ctlGraph("GET", "/"+psid+"?access_token="+tokenB, "", &got); st != 200 || got["name"] != first+" "+last || got["id"] != psid {
		t.Fatalf("default fields: %d %v", st, got)
	}

	for _, c := range []struct {
		name, path string
		code, sub  int
	}{
		{"a person who never wrote to the page", "/v21.0/7999999999999999?fields=first_name", 100, 33},
		{"a field a person does not have", "/v21.0/" + psid + "?fields=email", 100, 0},
		{"an edge of a person", "/v21.0/" + psid + "/friends", 100, 33},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out graphErr
			sep := "?"
			if strings.Contains(c.path, "?") {
				sep = "&"
			}
			if st := e.ctlGraph("GET", c.path+sep+"access_token="+tokenA, "", &out); st != 400 || out.Error == nil || out.Error.Code != c.code || out.Error.Subcode != c.sub {
				t.Fatalf("%d %+v, want %d/%d", st, out.Error, c.code, c.sub)
			}
		})
	}
}

func TestMessengerProfile(t *testing.T) {
	e := newEnv(t)
	var res map[string]any
	body := `{"get_started":{"payload":"GET_STARTED"},"greeting":[{"locale":"default","text":"Hello {{user_first_name}}"}]}`
	if st := e.ctlGraph("POST", "/v21.0/me/messenger_profile?access_token="+tokenA, body, &res); st != 200 || res["result"] != "success" {
		t.Fatalf("set: %d %v", st, res)
	}
	var got struct{ Data []map[string]json.RawMessage }
	e.ctlGraph("GET", "/v21.0/me/messenger_profile?fields=get_started,greeting,persistent_menu&access_token="+tokenA, "", &got)
	if len(got.Data) != 1 || string(got.Data[0]["get_started"]) != `{"payload":"GET_STARTED"}` || got.Data[0]["greeting"] == nil || got.Data[0]["persistent_menu"] != nil {
		t.Fatalf("get: %+v", got)
	}
	// Each app on the page has its own profile.
	got.Data = nil
	e.ctlGraph("GET", "/v21.0/"+pageID+"/messenger_profile?fields=get_started&access_token="+tokenB, "", &got)
	if len(got.Data) != 0 {
		t.Fatalf("bot-b sees bot-a's profile: %+v", got)
	}
	// DELETE takes the fields in its body; the others stay.
	if st := e.ctlGraph("DELETE", "/v21.0/me/messenger_profile?access_token="+tokenA, `{"fields":["get_started"]}`, &res); st != 200 {
		t.Fatalf("delete: %d %v", st, res)
	}
	got.Data = nil
	e.ctlGraph("GET", "/v21.0/me/messenger_profile?fields=get_started,greeting&access_token="+tokenA, "", &got)
	if len(got.Data) != 1 || got.Data[0]["get_started"] != nil || got.Data[0]["greeting"] == nil {
		t.Fatalf("after delete: %+v", got)
	}
	for _, c := range []struct{ method, query, body string }{
		{"GET", "", ""},
		{"GET", "fields=colour&", ""},
		{"POST", "", `{"colour":"blue"}`},
		{"DELETE", "", `{}`},
	} {
		var out graphErr
		if st := e.ctlGraph(c.method, "/v21.0/me/messenger_profile?"+c.query+"access_token="+tokenA, c.body, &out); st != 400 || out.Error == nil || out.Error.Code != 100 {
			t.Errorf("%s %q %s: %d %+v, want a 100", c.method, c.query, c.body, st, out.Error)
		}
	}
}

func TestAttachmentUploadAndPersonas(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	var up struct {
		AttachmentID string `json:"attachment_id"`
	}
	if st := e.ctlGraph("POST", "/v21.0/me/message_attachments?access_token="+tokenA,
		`{"message":{"attachment":{"type":"image","payload":{"url":"https://example.com/cat.png","is_reusable":true}}}}`, &up); st != 200 || !messenger.ValidID(up.AttachmentID) {
		t.Fatalf("upload by url: %d %+v", st, up)
	}
	// A file, as SDKs send it: multipart with message and filedata.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("message", `{"attachment":{"type":"file","payload":{"is_reusable":true}}}`)
	fw, _ := mw.CreateFormFile("filedata", "menu.pdf")
	_, _ = fw.Write([]byte("%PDF-1.4 not really"))
	_ = mw.Close()
	req := e.newRequest("POST", "/v21.0/me/message_attachments?access_token="+tokenA, buf.String())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var file struct {
		AttachmentID string `json:"attachment_id"`
	}
	if st := e.do(req, &file); st != 200 || !messenger.ValidID(file.AttachmentID) {
		t.Fatalf("upload a file: %d %+v", st, file)
	}
	var out graphErr
	if st := e.ctlGraph("POST", "/v21.0/me/message_attachments?access_token="+tokenA, `{"message":{"attachment":{"type":"image","payload":{}}}}`, &out); st != 400 {
		t.Fatalf("upload of nothing: %d", st)
	}

	var p struct{ ID string }
	if st := e.ctlGraph("POST", "/v21.0/me/personas?access_token="+tokenA, `{"name":"Ana from support","profile_picture_url":"https://example.com/ana.png"}`, &p); st != 200 || !messenger.ValidID(p.ID) {
		t.Fatalf("create persona: %d %+v", st, p)
	}
	var one map[string]string
	if st := e.ctlGraph("GET", "/v21.0/"+p.ID+"?access_token="+tokenB, "", &one); st != 200 || one["name"] != "Ana from support" {
		t.Fatalf("get persona: %d %v", st, one)
	}

	// Sends by attachment id and with the persona are accepted; unknown
	// ones are refused.
	send := func(payload, persona string) (*messenger.SendResponse, error) {
		return e.client.Send(ctx(), credA, &messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: messenger.MessagingTypeResponse, PersonaID: persona,
			Message: &messenger.OutgoingMessage{Attachment: &messenger.OutgoingAttachment{Type: "image", Payload: json.RawMessage(payload)}}})
	}
	if _, err := send(`{"attachment_id":"`+up.AttachmentID+`"}`, p.ID); err != nil {
		t.Fatalf("send by attachment id with a persona: %v", err)
	}
	_, err := send(`{"attachment_id":"1234567890123456"}`, "")
	wantGraphError(t, err, 100, 0, "(#100) Invalid parameter")
	_, err = send(`{"attachment_id":"`+file.AttachmentID+`"}`, "1234567890123456")
	wantGraphError(t, err, 100, 0, "(#100) Invalid parameter")

	// Delete: gone for good.
	var ok map[string]bool
	if st := e.ctlGraph("DELETE", "/v21.0/"+p.ID+"?access_token="+tokenA, "", &ok); st != 200 || !ok["success"] {
		t.Fatalf("delete persona: %d %v", st, ok)
	}
	out = graphErr{}
	if st := e.ctlGraph("GET", "/v21.0/"+p.ID+"?access_token="+tokenA, "", &out); st != 400 || out.Error.Subcode != 33 {
		t.Fatalf("deleted persona: %d %+v", st, out.Error)
	}
}

func TestPersonasListPages(t *testing.T) {
	e := newEnv(t)
	made := map[string]bool{}
	for i := range 5 {
		var p struct{ ID string }
		e.ctlGraph("POST", "/v21.0/me/personas?access_token="+tokenA, `{"name":"P`+string(rune('0'+i))+`","profile_picture_url":"https://example.com/p.png"}`, &p)
		made[p.ID] = true
	}
	seen, after, listings := map[string]bool{}, "", 0
	for {
		var page struct {
			Data   []struct{ ID string }
			Paging struct {
				Cursors struct{ After string }
				Next    string
			}
		}
		path := "/v21.0/me/personas?limit=2&access_token=" + tokenA
		if after != "" {
			path += "&after=" + after
		}
		if st := e.ctlGraph("GET", path, "", &page); st != 200 {
			t.Fatalf("list: %d", st)
		}
		listings++
		for _, d := range page.Data {
			seen[d.ID] = true
		}
		if page.Paging.Next == "" {
			break
		}
		after = page.Paging.Cursors.After
	}
	if len(seen) != 5 || listings != 3 {
		t.Fatalf("listed %d of %v in %d pages", len(seen), made, listings)
	}
}

// An Instagram account's people have Instagram's profile fields.
func TestInstagramUserProfile(t *testing.T) {
	e := newEnv(t, withInstagram)
	e.say("hola")
	first, last := messengertest.PersonName(psid)
	var got map[string]any
	if st := e.ctlGraph("GET", "/v21.0/"+psid+"?fields=name,username,follower_count&access_token="+tokenA, "", &got); st != 200 ||
		got["username"] != strings.ToLower(first+"_"+last) || got["follower_count"] != float64(0) {
		t.Fatalf("Instagram profile: %d %v", st, got)
	}
	var out graphErr
	if st := e.ctlGraph("GET", "/v21.0/"+psid+"?fields=first_name&access_token="+tokenA, "", &out); st != 400 || out.Error == nil || out.Error.Code != 100 {
		t.Fatalf("a Messenger field on Instagram: %d %+v", st, out.Error)
	}
}
