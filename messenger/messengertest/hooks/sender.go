// Package hooks is the fake platform's webhook sender: it posts Queued
// webhooks to the apps' callbacks, signed, with retries, on one lane per
// app, in the order, with the delays, repeats and batches Settings choose.
// It is given its dependencies as values and knows nothing of the
// platform's state.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/fakeconfig"
)

// Record is one webhook POST (with its retries) to one app.
type Record struct {
	ID         int          `json:"id"`
	At         time.Time    `json:"at"` // platform clock when sent
	App        string       `json:"app"`
	AppID      messenger.ID `json:"app_id"`
	URL        string       `json:"url"`
	Channels   []string     `json:"channels"`
	Kinds      []string     `json:"kinds"`
	Status     string       `json:"status"` // pending | delivered | failed
	Attempts   int          `json:"attempts"`
	LastStatus int          `json:"last_status,omitempty"`
	LastError  string       `json:"last_error,omitempty"`
	Body       string       `json:"body,omitempty"`
	// Repeat marks a POST delivered again, with the same body, as Meta's
	// retries do (Settings.WebhookRepeat).
	Repeat bool `json:"repeat,omitempty"`
}

// maxRecords is how many Records a Sender keeps.
const maxRecords = 10000

// Clock is the platform's time, which records are stamped with.
type Clock interface{ Now() time.Time }

// Settings are the platform's settings (see fakeconfig.Settings).
type Settings = fakeconfig.Settings

// Target is the app a webhook goes to.
type Target struct {
	Name     string
	ID       messenger.ID
	Callback string
	Secret   string
}

// WireEntry is an entry whose events are already encoded, so that each
// recipient gets the bytes routed for it.
type WireEntry struct {
	ID        messenger.ID      `json:"id"`
	Time      int64             `json:"time"`
	Messaging []json.RawMessage `json:"messaging,omitempty"`
	Standby   []json.RawMessage `json:"standby,omitempty"`
}

type wireEnvelope struct {
	Object string      `json:"object"`
	Entry  []WireEntry `json:"entry"`
}

// Queued is one entry for one app, waiting to be posted.
type Queued struct {
	App     Target
	Object  string // the envelope's object: "page" or "instagram"
	Entry   WireEntry
	Channel messenger.Channel
	Kind    messenger.Kind
}

// Sender delivers webhooks: one lane per app, each its own
// connection to the app's callback, apart from every other app's, with
// the order, delays, repeats and batches Settings choose (webhook_order.go).
// It knows the world only through onResult, which it calls after each POST.
type Sender struct {
	client   *http.Client
	clock    Clock
	log      *zap.Logger
	settings Settings
	onResult func(batch []Queued, ok bool)

	mu      sync.Mutex
	lanes   map[messenger.ID]*lane
	holdAll bool          // hold every app, those without a lane yet too
	busy    bool          // some lane has work it may do
	idle    chan struct{} // closed while !busy
	records []*Record
	nextID  int
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// NewSender returns a sender posting with client; onResult hears of
// each POST's batch and whether it was delivered.
func NewSender(client *http.Client, c Clock, log *zap.Logger, settings Settings, onResult func([]Queued, bool)) *Sender {
	idle := make(chan struct{})
	close(idle)
	return &Sender{
		client:   client,
		clock:    c,
		log:      log,
		settings: settings,
		onResult: onResult,
		lanes:    map[messenger.ID]*lane{},
		idle:     idle,
		stop:     make(chan struct{}),
	}
}

// send posts p, with retries, and reports whether it was delivered. It
// builds the body of a first delivery; a repeat sends its body again.
func (s *Sender) send(p *post) bool {
	batch := p.entries
	a := batch[0].App
	rec := &Record{At: s.clock.Now(), App: a.Name, AppID: a.ID, URL: a.Callback, Status: "pending", Repeat: p.repeat()}
	env := wireEnvelope{Object: batch[0].Object}
	for _, q := range batch {
		env.Entry = append(env.Entry, q.Entry)
		rec.Channels = append(rec.Channels, string(q.Channel))
		rec.Kinds = append(rec.Kinds, string(q.Kind))
	}
	if p.body == nil {
		body, err := messenger.MarshalLikeMeta(env)
		if err != nil { // cannot happen: every part was encoded before
			s.log.Error("encode webhook", zap.Error(err))
			return false
		}
		p.body = body
	}
	body := p.body
	rec.Body = string(body)
	s.mu.Lock()
	s.nextID++
	rec.ID = s.nextID
	if len(s.records) >= maxRecords {
		s.records = s.records[1:]
	}
	s.records = append(s.records, rec)
	s.mu.Unlock()

	delay := s.settings.WebhookRetryDelay
	for attempt := 0; attempt <= s.settings.WebhookRetries; attempt++ {
		if attempt > 0 {
			if !s.sleep(delay) {
				return false
			}
			delay *= 2
		}
		status, err := s.post(a, body)
		s.mu.Lock()
		rec.Attempts++
		rec.LastStatus = status
		if err != nil {
			rec.LastError = err.Error()
		} else {
			rec.LastError = ""
			rec.Status = "delivered"
		}
		s.mu.Unlock()
		if err == nil {
			s.onResult(batch, true)
			return true
		}
		s.log.Info("webhook failed", zap.String("app", a.Name), zap.Int("attempt", attempt+1), zap.Error(err))
	}
	s.mu.Lock()
	rec.Status = "failed"
	s.mu.Unlock()
	s.onResult(batch, false)
	return false
}

// sleep waits d of real time and reports false if the sender stopped
// first.
func (s *Sender) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
		return true
	}
}

func (s *Sender) post(a Target, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.WebhookTimeout)
	defer cancel()
	go func() { // Close cancels in-flight posts too
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.Callback, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facebookexternalua")
	req.Header.Set(messenger.HeaderSignature256, messenger.Sign([]byte(a.Secret), body))
	req.Header.Set(messenger.HeaderSignatureSHA1, messenger.SignSHA1([]byte(a.Secret), body))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("callback answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// List returns the record of every webhook POST, oldest first.
func (s *Sender) List() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, len(s.records))
	for i, r := range s.records {
		out[i] = *r
		out[i].Channels = append([]string(nil), r.Channels...)
		out[i].Kinds = append([]string(nil), r.Kinds...)
	}
	return out
}

// Close stops the sender; queued webhooks are dropped.
func (s *Sender) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	s.updateIdle() // closed: nothing left to wait for
	s.mu.Unlock()
}

// Verify performs Meta's subscription handshake with an app's callback:
// GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=.., which must
// answer 200 with the challenge as its body.
func (s *Sender) Verify(ctx context.Context, appName, callback, verifyToken string) error {
	challenge := fmt.Sprint(time.Now().UnixNano() % 1e9)
	u, err := url.Parse(callback)
	if err != nil {
		return fmt.Errorf("callback_url: %w", err)
	}
	q := u.Query()
	q.Set("hub.mode", "subscribe")
	q.Set("hub.verify_token", verifyToken)
	q.Set("hub.challenge", challenge)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("verify %s: %w", appName, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || string(body) != challenge {
		return fmt.Errorf("verify %s: callback answered %s %.100q, want 200 %q", appName, resp.Status, body, challenge)
	}
	return nil
}
