// Package webhook is the adapter of YAML type "http": it POSTs Baton's JSON
// envelope to the bot, signed per the Standard Webhooks specification
// (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256
// of "id.timestamp.body">).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/adapters"
)

// TypeName is the adapter's name in the YAML.
const TypeName = "http"

// Adapter posts deliveries to one URL.
type Adapter struct {
	url    string
	key    []byte
	macs   sync.Pool // HMAC-SHA256s keyed with key
	client *http.Client
	now    func() time.Time
}

// New builds the adapter. A secret "whsec_<base64>" is decoded as the
// Standard Webhooks spec says; any other secret is used as it is.
func New(s adapters.Settings) (adapters.Adapter, error) {
	if s.URL == "" {
		return nil, fmt.Errorf("http adapter: url is required")
	}
	key, err := Key(s.Secret)
	if err != nil {
		return nil, err
	}
	a := &Adapter{url: s.URL, key: key, client: s.HTTPClient(), now: time.Now}
	a.macs.New = func() any { return hmac.New(sha256.New, key) }
	return a, nil
}

// Key returns the signing key for a configured secret.
func Key(secret string) ([]byte, error) {
	if b64, ok := strings.CutPrefix(secret, "whsec_"); ok {
		k, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("http adapter: secret: whsec_ value is not base64: %w", err)
		}
		return k, nil
	}
	if secret == "" {
		return nil, fmt.Errorf("http adapter: secret is required")
	}
	return []byte(secret), nil
}

// Sign returns the webhook-signature value for id, timestamp and body.
func Sign(key []byte, id string, ts int64, body []byte) string {
	return signWith(hmac.New(sha256.New, key), id, ts, body)
}

// sign is Sign with one of the adapter's keyed HMACs: keying one costs
// two blocks of SHA-256 and a handful of allocations, per delivery.
func (a *Adapter) sign(id string, ts int64, body []byte) string {
	m := a.macs.Get().(hash.Hash)
	sig := signWith(m, id, ts, body)
	m.Reset() // back to the keyed state
	a.macs.Put(m)
	return sig
}

// signWith signs "id.timestamp.body" with m, a fresh HMAC-SHA256. One
// buffer holds the prefix, then the MAC and the value beside it.
func signWith(m hash.Hash, id string, ts int64, body []byte) string {
	var buf [96]byte
	m.Write(append(strconv.AppendInt(append(append(buf[:0], id...), '.'), ts, 10), '.'))
	m.Write(body)
	mac := m.Sum(buf[:0])
	sig := append(buf[sha256.Size:sha256.Size], "v1,"...)
	return string(base64.StdEncoding.AppendEncode(sig, mac))
}

// Verify checks a Standard Webhooks request: a bot written in Go can use
// it. tolerance bounds the age of the timestamp.
func Verify(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, tsRaw := h.Get("webhook-id"), h.Get("webhook-timestamp")
	ts, err := strconv.ParseInt(tsRaw, 10, 64)
	if id == "" || err != nil {
		return fmt.Errorf("missing webhook-id or webhook-timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp %d outside tolerance", ts)
	}
	want := Sign(key, id, ts, body)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no matching webhook-signature")
}

// A ReceiveError is why Receive refused a request; Status is the answer
// to give Baton (401 for a signature, 400 for a body: Baton dead-letters
// a 400 at once instead of retrying what can never succeed).
type ReceiveError struct {
	Status int
	Err    error
}

func (e *ReceiveError) Error() string { return e.Err.Error() }
func (e *ReceiveError) Unwrap() error { return e.Err }

// Receive reads, verifies and decodes one delivery from Baton: the first
// lines of a bot's handler, written in Go. Bodies over maxBody are
// refused; tolerance bounds the age of the signature's timestamp.
func Receive(key []byte, r *http.Request, maxBody int64, tolerance time.Duration) (*adapters.Delivery, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, &ReceiveError{Status: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("read delivery: %w", err)}
	}
	if err := Verify(key, r.Header, body, time.Now(), tolerance); err != nil {
		return nil, &ReceiveError{Status: http.StatusUnauthorized, Err: err}
	}
	var d adapters.Delivery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, &ReceiveError{Status: http.StatusBadRequest, Err: fmt.Errorf("decode delivery: %w", err)}
	}
	return &d, nil
}

// encode writes the delivery with its event spliced in byte for byte:
// the bot gets the event exactly as Meta sent it (json.Marshal would
// compact it and rewrite <, > and & as \u003c...), and the 1 KB event is
// not scanned again on every attempt.
func encode(d *adapters.Delivery) ([]byte, error) { return appendEnvelope(nil, d) }

// envelopeHead bounds what an envelope holds besides its event, for
// sizing a batch's buffer: ids, names, the thread's owner and state.
const envelopeHead = 512

func envelopeSize(d *adapters.Delivery) int { return envelopeHead + len(d.Event) }

// appendEnvelope appends the envelope encode writes to dst.
func appendEnvelope(dst []byte, d *adapters.Delivery) ([]byte, error) {
	head := *d
	head.Event = nil
	b, err := json.Marshal(&head)
	if err != nil {
		return nil, err
	}
	// Event is the last field and nil marshals as null.
	const tail = `"event":null}`
	if len(d.Event) == 0 || !bytes.HasSuffix(b, []byte(tail)) {
		whole, err := json.Marshal(d)
		return append(dst, whole...), err
	}
	dst = slices.Grow(dst, len(b)-len(tail)+len(`"event":}`)+len(d.Event))
	dst = append(dst, b[:len(b)-len(tail)]...)
	dst = append(dst, `"event":`...)
	dst = append(dst, d.Event...)
	return append(dst, '}'), nil
}

// Deliver posts d. A 2xx answer may carry {"actions":[...]}.
func (a *Adapter) Deliver(ctx context.Context, d *adapters.Delivery) (adapters.Result, error) {
	body, err := encode(d)
	if err != nil {
		return adapters.Result{}, &adapters.Error{Err: fmt.Errorf("encode delivery: %w", err)}
	}
	status, raw, err := a.post(ctx, d.ID, body)
	if err != nil {
		return adapters.Result{Status: status}, err
	}
	res := adapters.Result{Status: status}
	var answer struct {
		Actions []adapters.Action `json:"actions"`
	}
	if len(bytes.TrimSpace(raw)) > 0 && json.Unmarshal(raw, &answer) == nil {
		res.Actions = answer.Actions
	}
	return res, nil
}

// post sends one signed body under the webhook-id id and judges the
// answer; it returns the answer's status and body.
func (a *Adapter) post(ctx context.Context, id string, body []byte) (int, []byte, error) {
	now := a.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, &adapters.Error{Err: err}
	}
	// Set under their canonical names, values in one array: Header.Set
	// canonicalizes each name and allocates each value's slice.
	v := []string{"application/json", "Baton", id, strconv.FormatInt(now.Unix(), 10), a.sign(id, now.Unix(), body)}
	h := req.Header
	h["Content-Type"], h["User-Agent"], h["Webhook-Id"], h["Webhook-Timestamp"], h["Webhook-Signature"] = v[0:1:1], v[1:2:2], v[2:3:3], v[3:4:4], v[4:5:5]
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, adapters.PostError(err)
	}
	defer resp.Body.Close()
	var raw []byte
	if resp.ContentLength != 0 { // most bots answer a delivery with nothing
		raw, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
	return resp.StatusCode, raw, adapters.Check(resp.StatusCode, resp.Header, raw, now)
}
