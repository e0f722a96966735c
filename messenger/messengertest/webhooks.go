package messengertest

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
)

// WebhookRecord is one webhook POST (with its retries) to one app.
type WebhookRecord struct {
	ID         int          `json:"id"`
	At         time.Time    `json:"at"` // platform clock when queued
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
}

// wireEntry is an entry whose events are already encoded, so that each
// recipient gets the bytes routed for it.
type wireEntry struct {
	ID        messenger.ID      `json:"id"`
	Time      int64             `json:"time"`
	Messaging []json.RawMessage `json:"messaging,omitempty"`
	Standby   []json.RawMessage `json:"standby,omitempty"`
}

type wireEnvelope struct {
	Object string      `json:"object"`
	Entry  []wireEntry `json:"entry"`
}

type queued struct {
	pa      *pageApp
	entry   wireEntry
	channel messenger.Channel
	kind    messenger.Kind
}

// webhookSender delivers webhooks in order per app: one goroutine per app
// while it has work, which retries a failing POST before moving on. It
// knows the world only through onResult, which it calls after each POST.
type webhookSender struct {
	client   *http.Client
	clock    Clock
	log      *zap.Logger
	settings Settings
	onResult func(batch []queued, ok bool)

	mu      sync.Mutex
	queues  map[messenger.ID][]queued
	running map[messenger.ID]bool
	pending int
	idle    chan struct{} // closed while nothing is pending
	records []*WebhookRecord
	nextID  int
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newWebhookSender(client *http.Client, c Clock, log *zap.Logger, settings Settings, onResult func([]queued, bool)) *webhookSender {
	idle := make(chan struct{})
	close(idle)
	return &webhookSender{
		client:   client,
		clock:    c,
		log:      log,
		settings: settings,
		onResult: onResult,
		queues:   map[messenger.ID][]queued{},
		running:  map[messenger.ID]bool{},
		idle:     idle,
		stop:     make(chan struct{}),
	}
}

func (s *webhookSender) enqueue(q queued) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.pending == 0 {
		s.idle = make(chan struct{})
	}
	s.pending++
	id := q.pa.app.id
	s.queues[id] = append(s.queues[id], q)
	if !s.running[id] {
		s.running[id] = true
		s.wg.Add(1)
		go s.run(id)
	}
}

// run sends the app's queue until it is empty.
func (s *webhookSender) run(appID messenger.ID) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		q := s.queues[appID]
		if len(q) == 0 || s.closed {
			s.running[appID] = false
			s.mu.Unlock()
			return
		}
		n := min(len(q), s.settings.MaxBatch)
		batch := append([]queued(nil), q[:n]...)
		s.queues[appID] = q[n:]
		s.mu.Unlock()

		s.send(batch)

		s.mu.Lock()
		s.pending -= n
		if s.pending == 0 {
			close(s.idle)
		}
		s.mu.Unlock()
	}
}

func (s *webhookSender) send(batch []queued) {
	a := batch[0].pa.app
	env := wireEnvelope{Object: messenger.ObjectPage}
	rec := &WebhookRecord{At: s.clock.Now(), App: a.name, AppID: a.id, URL: a.callback, Status: "pending"}
	for _, q := range batch {
		env.Entry = append(env.Entry, q.entry)
		rec.Channels = append(rec.Channels, string(q.channel))
		rec.Kinds = append(rec.Kinds, string(q.kind))
	}
	body, err := messenger.MarshalLikeMeta(env)
	if err != nil { // cannot happen: every part was encoded before
		s.log.Error("encode webhook", zap.Error(err))
		return
	}
	rec.Body = string(body)
	s.mu.Lock()
	s.nextID++
	rec.ID = s.nextID
	if len(s.records) >= maxWebhookRecords {
		s.records = s.records[1:]
	}
	s.records = append(s.records, rec)
	s.mu.Unlock()

	delay := s.settings.WebhookRetryDelay
	for attempt := 0; attempt <= s.settings.WebhookRetries; attempt++ {
		if attempt > 0 {
			select {
			case <-s.stop:
				return
			case <-time.After(delay):
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
			return
		}
		s.log.Info("webhook failed", zap.String("app", a.name), zap.Int("attempt", attempt+1), zap.Error(err))
	}
	s.mu.Lock()
	rec.Status = "failed"
	s.mu.Unlock()
	s.onResult(batch, false)
}

func (s *webhookSender) post(a *app, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.WebhookTimeout)
	defer cancel()
	go func() { // Close cancels in-flight posts too
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.callback, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facebookexternalua")
	req.Header.Set(messenger.HeaderSignature256, messenger.Sign([]byte(a.secret), body))
	req.Header.Set(messenger.HeaderSignatureSHA1, messenger.SignSHA1([]byte(a.secret), body))
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

// settle waits until no webhook is queued or in flight.
func (s *webhookSender) settle(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("webhooks still pending: %w", ctx.Err())
	}
}

func (s *webhookSender) list() []WebhookRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]WebhookRecord, len(s.records))
	for i, r := range s.records {
		out[i] = *r
		out[i].Channels = append([]string(nil), r.Channels...)
		out[i].Kinds = append([]string(nil), r.Kinds...)
	}
	return out
}

func (s *webhookSender) close() {
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
	if s.pending > 0 {
		s.pending = 0
		close(s.idle)
	}
	s.mu.Unlock()
}

// verify performs Meta's subscription handshake with an app's callback:
// GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=.., which must
// answer 200 with the challenge as its body.
func (s *webhookSender) verify(ctx context.Context, appName, callback, verifyToken string) error {
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
