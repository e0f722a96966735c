package graphapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
)

const (
	maxGraphBody = 1 << 20
	// maxUploadBody bounds a multipart body (an attachment upload, a send
	// with a file): Meta takes files up to 25 MB.
	maxUploadBody = 25 << 20
)

// call is one request to /graph, read and authenticated.
type call struct {
	r  *http.Request
	ps messenger.Params
	// form is a multipart body re-encoded without credentials, to go to
	// Meta as it came; nil for any other body.
	form *body
	// encoding is how the bot sent its arguments: "json", "form" or ""
	// (the query only). A pass-through call goes to Meta the same way.
	encoding string
	app      *topology.App
	// bound is the page the token stands for (a page's own Baton token);
	// nil for the app's token, which stands for every page of the app.
	bound *topology.Page
}

// body is a request body for Meta and its content type.
type body struct {
	contentType string
	data        []byte
}

// readCall reads a request's arguments and finds the caller. A token that
// comes in the query or a header is checked before the body is read, so
// that a stranger's upload is refused unread.
func (g *Endpoint) readCall(r *http.Request) (*call, *messenger.Error) {
	badToken := newError(http.StatusBadRequest, messenger.CodeBadToken, 0, "Invalid OAuth access token.")
	if tok := (messenger.Params{"access_token": r.URL.Query().Get("access_token")}).AccessToken(r); tok != "" {
		if a, _ := g.d.Topology.Caller(tok); a == nil {
			return nil, badToken
		}
	}
	ct, mparams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	limit := int64(maxGraphBody)
	if ct == "multipart/form-data" {
		limit = maxUploadBody
	}
	var raw []byte
	if r.Body != nil {
		var err error
		if raw, err = io.ReadAll(io.LimitReader(r.Body, limit+1)); err != nil {
			return nil, newError(http.StatusBadRequest, 100, 0, "(#100) "+err.Error())
		}
		if int64(len(raw)) > limit {
			return nil, newError(http.StatusRequestEntityTooLarge, 100, 0, fmt.Sprintf("(#100) body over %d bytes", limit))
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
	}
	ps, err := messenger.ReadParams(r, limit)
	if err != nil {
		return nil, newError(http.StatusBadRequest, 100, 0, "(#100) "+err.Error())
	}
	c := &call{r: r, ps: ps}
	switch trimmed := bytes.TrimSpace(raw); {
	case ct == "multipart/form-data":
		if c.form, err = formWithoutCredentials(raw, mparams["boundary"]); err != nil {
			return nil, newError(http.StatusBadRequest, 100, 0, "(#100) multipart body: "+err.Error())
		}
	case len(trimmed) == 0:
	case ct == "application/json" || (ct == "" && trimmed[0] == '{'):
		c.encoding = "json"
	default:
		c.encoding = "form"
	}
	c.app, c.bound = g.d.Topology.Caller(ps.AccessToken(r))
	if c.app == nil {
		return nil, badToken
	}
	return c, nil
}

// outgoing is how a pass-through call's arguments go to Meta: as the bot
// sent them (query, form, JSON or multipart), without its credentials.
func (c *call) outgoing() (url.Values, *body) {
	args := withoutCredentials(c.ps)
	q := url.Values{}
	switch {
	case c.form != nil:
		for k, v := range c.r.URL.Query() {
			if k != "access_token" && k != "appsecret_proof" {
				q[k] = v
			}
		}
		return q, c.form
	case c.encoding == "json":
		b, _ := json.Marshal(args)
		return q, &body{contentType: "application/json", data: b}
	}
	for k := range args {
		q.Set(k, c.ps.String(k))
	}
	if c.encoding == "form" {
		return url.Values{}, &body{contentType: "application/x-www-form-urlencoded", data: []byte(q.Encode())}
	}
	return q, nil
}

// formWithoutCredentials re-encodes a multipart body, parts and their
// headers as they came, less access_token and appsecret_proof: the Baton
// token stays with Baton, Meta gets the page token in the query.
func formWithoutCredentials(raw []byte, boundary string) (*body, error) {
	if boundary == "" {
		return nil, fmt.Errorf("no boundary in Content-Type")
	}
	mr := multipart.NewReader(bytes.NewReader(raw), boundary)
	var out bytes.Buffer
	mw := multipart.NewWriter(&out)
	for {
		part, err := mr.NextRawPart() // raw: the parts go on as they came
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if name := part.FormName(); name == "access_token" || name == "appsecret_proof" {
			continue
		}
		pw, err := mw.CreatePart(part.Header)
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(pw, part); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return &body{contentType: mw.FormDataContentType(), data: out.Bytes()}, nil
}

// recipientPSID is the PSID a call is about: `recipient` as an object
// ({"id": PSID}, the Send API and thread control) or as plain digits
// (thread_owner's query).
func recipientPSID(ps messenger.Params) string {
	if s := strings.TrimSpace(ps.String("recipient")); messenger.ValidID(s) {
		return s
	}
	if rcpt, ok := ps.Recipient(); ok && messenger.ValidID(string(rcpt.ID)) {
		return string(rcpt.ID)
	}
	return ""
}
