package messenger

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http/httptest"
	"strings"
	"testing"
)

// A multipart body (an attachment upload) gives its text fields as
// parameters and its files by name; a broken one is an error, not a panic.
func TestReadParamsMultipart(t *testing.T) {
	form := func(parts int) (string, *bytes.Buffer) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("message", `{"attachment":{"type":"image","payload":{}}}`)
		fw, _ := mw.CreateFormFile("filedata", "cat.png")
		_, _ = fw.Write([]byte{0x89, 'P', 'N', 'G'})
		for i := 2; i < parts; i++ {
			_ = mw.WriteField(fmt.Sprint("f", i), "x")
		}
		_ = mw.Close()
		return mw.FormDataContentType(), &buf
	}
	ct, body := form(2)
	r := httptest.NewRequest("POST", "/me/message_attachments?access_token=T", body)
	r.Header.Set("Content-Type", ct)
	ps, err := ReadParams(r, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if ps.String("access_token") != "T" || !strings.Contains(ps.String("message"), `"image"`) || ps["filedata"] != (FilePart{Name: "cat.png"}) || ps.String("filedata") != "cat.png" {
		t.Fatalf("params %v", ps)
	}
	for _, c := range []struct {
		name, ct, body string
	}{
		{"no boundary", "multipart/form-data", "--x\r\n"},
		{"cut short", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue"},
		{"too many parts", "", ""},
	} {
		ct, b := c.ct, bytes.NewBufferString(c.body)
		if c.ct == "" {
			ct, b = form(maxFormParts + 1)
		}
		r := httptest.NewRequest("POST", "/me/message_attachments", b)
		r.Header.Set("Content-Type", ct)
		if _, err := ReadParams(r, 1<<20); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
