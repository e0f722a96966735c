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
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
)

const (
	maxGraphBody = 1 << 20
	// maxUploadBody bounds a multipart body (an attachment upload, a send
	// with a file): Meta takes files up to 25 MB.
	maxUploadBody = 25 << 20
	// uploadReadTime is how long reading an upload may take: the public
	// listener's rule (orchestrator's readTimeout) for maxUploadBody, at
	// 1 Mbit/s.
	uploadReadTime = 2*time.Second + maxUploadBody*time.Second/(1_000_000/8)
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
// that a stranger's upload is refused unread. A body over maxGraphBody is
// read on only for a multipart upload whose caller is known by then: from
// the query, a header, or an access_token part within the first
// maxGraphBody bytes. A stranger can so make Baton hold no more than any
// other call's body, and a bot's upload gets the time its size needs
// (uploadReadTime) rather than the listener's read timeout, which is
// sized for that smaller body.
func (g *Endpoint) readCall(w http.ResponseWriter, r *http.Request) (*call, *messenger.Error) {
	badToken := newError(http.StatusBadRequest, messenger.CodeBadToken, 0, "Invalid OAuth access token.")
	known := false
	if tok := (messenger.Params{"access_token": r.URL.Query().Get("access_token")}).AccessToken(r); tok != "" {
		if a, _ := g.d.Topology.Caller(tok); a == nil {
			return nil, badToken
		}
		known = true
	}
	ct, mparams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	multi := ct == "multipart/form-data"
	var raw []byte
	if r.Body != nil {
		var err error
		if raw, err = io.ReadAll(io.LimitReader(r.Body, maxGraphBody+1)); err != nil {
			return nil, newError(http.StatusBadRequest, 100, 0, "(#100) "+err.Error())
		}
		if len(raw) > maxGraphBody {
			if !multi {
				return nil, newError(http.StatusRequestEntityTooLarge, 100, 0, fmt.Sprintf("(#100) body over %d bytes", maxGraphBody))
			}
			if !known {
				tok := formToken(raw, mparams["boundary"])
				if tok == "" {
					return nil, newError(http.StatusRequestEntityTooLarge, 100, 0, fmt.Sprintf(
						"(#100) a multipart body over %d bytes needs its access_token first: in the query, the Authorization header or a part before the file", maxGraphBody))
				}
				if a, _ := g.d.Topology.Caller(tok); a == nil {
					return nil, badToken
				}
			}
			// Not supported by a wrapped writer without Unwrap: the
			// listener's timeout then stands.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadReadTime))
			rest, err := io.ReadAll(io.LimitReader(r.Body, int64(maxUploadBody+1-len(raw))))
			if err != nil {
				return nil, newError(http.StatusBadRequest, 100, 0, "(#100) "+err.Error())
			}
			if raw = append(raw, rest...); len(raw) > maxUploadBody {
				return nil, newError(http.StatusRequestEntityTooLarge, 100, 0, fmt.Sprintf("(#100) body over %d bytes", maxUploadBody))
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
	}
	limit := int64(maxGraphBody)
	if multi {
		limit = maxUploadBody
	}
	ps, err := messenger.ReadParams(r, limit)
	if err != nil {
		return nil, newError(http.StatusBadRequest, 100, 0, "(#100) "+err.Error())
	}
	c := &call{r: r, ps: ps}
	switch trimmed := bytes.TrimSpace(raw); {
	case multi:
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

// formToken is the value of the access_token part among the parts that
// prefix, the start of a multipart body, holds whole; "" if none does.
func formToken(prefix []byte, boundary string) string {
	if boundary == "" {
		return ""
	}
	mr := multipart.NewReader(bytes.NewReader(prefix), boundary)
	for {
		part, err := mr.NextPart()
		if err != nil {
			return "" // the end of prefix, cut inside a part, or a broken body
		}
		if part.FormName() != "access_token" {
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, 4<<10))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(v))
	}
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
