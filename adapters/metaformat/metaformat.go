// Package metaformat is the adapter of YAML type "messenger": it forwards
// each event to the bot exactly in Meta's webhook shape, so that a bot
// written against Meta's platform with any SDK works behind Baton
// unmodified. The body is compact and escaped like Meta's, one event per
// request unless batching is on (batch.go), on the
// channel Meta would use for that app, and signed with the bot's secret in
// X-Hub-Signature-256 and, for SDKs that check only it, X-Hub-Signature.
package metaformat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
)

// TypeName is the adapter's name in the YAML.
const TypeName = "messenger"

// The body is Meta's shape and nothing else, so what Baton adds goes in
// headers, on a dead letter an operator retried only (adapters.Retried):
// it may come after later events of its thread.
const (
	HeaderRetried        = "X-Baton-Retried-Dead-Letter" // "1"
	HeaderDeadAt         = "X-Baton-Dead-At"             // when it died, RFC 3339
	HeaderLaterDelivered = "X-Baton-Later-Delivered"     // "true" when later events of its thread went first
)

// Adapter posts Meta-format webhooks to one URL.
type Adapter struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// New builds the adapter.
func New(s adapters.Settings) (adapters.Adapter, error) {
	if s.URL == "" || s.Secret == "" {
		return nil, fmt.Errorf("messenger adapter: url and secret are required")
	}
	return &Adapter{url: s.URL, secret: []byte(s.Secret), client: s.HTTPClient(), now: time.Now}, nil
}

type entry struct {
	ID        string            `json:"id"`
	Time      int64             `json:"time"`
	Messaging []json.RawMessage `json:"messaging,omitempty"`
	Standby   []json.RawMessage `json:"standby,omitempty"`
}

// Body builds the webhook body Meta would send this app for d.
func Body(d *adapters.Delivery, now time.Time) ([]byte, error) {
	return BatchBody([]*adapters.Delivery{d}, now)
}

// Deliver posts d in Meta's shape. Like Meta, it expects a 200; anything
// else is judged by adapters.Check.
func (a *Adapter) Deliver(ctx context.Context, d *adapters.Delivery) (adapters.Result, error) {
	now := a.now()
	body, err := Body(d, now)
	if err != nil {
		return adapters.Result{}, &adapters.Error{Err: fmt.Errorf("encode webhook: %w", err)}
	}
	status, err := a.post(ctx, body, d.Retried, now)
	return adapters.Result{Status: status}, err
}

// post sends one signed body and judges the answer.
func (a *Adapter) post(ctx context.Context, body []byte, retried *adapters.Retried, now time.Time) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return 0, &adapters.Error{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(messenger.HeaderSignature256, messenger.Sign(a.secret, body))
	req.Header.Set(messenger.HeaderSignatureSHA1, messenger.SignSHA1(a.secret, body))
	if r := retried; r != nil {
		req.Header.Set(HeaderRetried, "1")
		req.Header.Set(HeaderDeadAt, r.DeadAt.UTC().Format(time.RFC3339Nano))
		req.Header.Set(HeaderLaterDelivered, strconv.FormatBool(r.LaterDelivered))
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, adapters.PostError(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, adapters.Check(resp.StatusCode, resp.Header, raw, now)
}
