package messenger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Params are a Graph API call's arguments, merged from the query string, a
// form body and a JSON body: Meta accepts all three, and SDKs use each.
type Params map[string]any

// ReadParams reads a Graph request's arguments; the body is limited to max
// bytes. A multipart/form-data body (an attachment upload) gives its text
// fields as parameters and each file part as its field name with the
// file's name as value (see FileParts), the file's bytes left out.
func ReadParams(r *http.Request, max int64) (Params, error) {
	ps := Params{}
	for k, v := range r.URL.Query() {
		ps[k] = v[0]
	}
	if r.Body == nil {
		return ps, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("body over %d bytes", max)
	}
	ct, mparams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	trimmed := bytes.TrimSpace(body)
	switch {
	case ct == "multipart/form-data":
		if err := readMultipart(ps, body, mparams["boundary"]); err != nil {
			return nil, fmt.Errorf("multipart body: %w", err)
		}
	case len(trimmed) == 0:
	case ct == "application/json" || (ct == "" && trimmed[0] == '{'):
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("json body: %w", err)
		}
		for k, v := range m {
			ps[k] = v
		}
	default:
		form, err := url.ParseQuery(string(trimmed))
		if err != nil {
			return nil, fmt.Errorf("form body: %w", err)
		}
		for k, v := range form {
			ps[k] = v[0]
		}
	}
	return ps, nil
}

// maxFormParts bounds the parts of a multipart body: an SDK sends a few.
const maxFormParts = 64

// readMultipart adds a multipart body's fields to ps: text fields by
// value, file parts by file name.
func readMultipart(ps Params, body []byte, boundary string) error {
	if boundary == "" {
		return fmt.Errorf("no boundary in Content-Type")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n >= maxFormParts {
			return fmt.Errorf("more than %d parts", maxFormParts)
		}
		name := part.FormName()
		if name == "" {
			continue
		}
		if part.FileName() != "" {
			ps[name] = FilePart{Name: part.FileName()}
			continue
		}
		v, err := io.ReadAll(part) // bounded by the body, read whole already
		if err != nil {
			return err
		}
		ps[name] = string(v)
	}
}

// FilePart is a file sent in a multipart body, as ReadParams gives it:
// its name, not its bytes.
type FilePart struct{ Name string }

// String returns a parameter as text: strings as they are, numbers by
// their digits, objects as JSON.
func (ps Params) String(k string) string {
	switch v := ps[k].(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case FilePart:
		return v.Name
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

var looseID = regexp.MustCompile(`"?id"?\s*:\s*"?([0-9]+)"?`)

// Recipient reads `recipient`: an object {"id": PSID} in JSON, or in a
// query or form the same object as a JSON-ish string ({"id":"1"} or {id:1}).
func (ps Params) Recipient() (Recipient, bool) {
	var r Recipient
	switch v := ps["recipient"].(type) {
	case map[string]any:
		b, _ := json.Marshal(v)
		if json.Unmarshal(b, &r) != nil {
			return r, false
		}
	case string:
		if json.Unmarshal([]byte(v), &r) != nil {
			m := looseID.FindStringSubmatch(v)
			if m == nil {
				return r, false
			}
			r.ID = ID(m[1])
		}
	default:
		return r, false
	}
	return r, r.ID != "" || r.OneTimeNotifToken != "" || r.UserRef != ""
}

// AccessToken returns the token a Graph call carries: access_token in the
// query, form or JSON body, or an Authorization: Bearer (or OAuth) header.
func (ps Params) AccessToken(r *http.Request) string {
	if t := ps.String("access_token"); t != "" {
		return t
	}
	h := r.Header.Get("Authorization")
	for _, scheme := range []string{"Bearer ", "OAuth "} {
		if t, ok := strings.CutPrefix(h, scheme); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}
