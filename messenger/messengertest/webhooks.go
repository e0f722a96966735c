package messengertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
// while it has work, which retries a failing POST before moving on.
type webhookSender struct {
	p      *Platform
	client *http.Client

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

func newWebhookSender(p *Platform) *webhookSender {
	idle := make(chan struct{})
	close(idle)
	return &webhookSender{
		p:       p,
		client:  &http.Client{},
		queues:  map[messenger.ID][]queued{},
		running: map[messenger.ID]bool{},
		idle:    idle,
		stop:    make(chan struct{}),
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
		n := min(len(q), s.p.settings.MaxBatch)
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
	rec := &WebhookRecord{At: s.p.now(), App: a.name, AppID: a.id, URL: a.callback, Status: "pending"}
	for _, q := range batch {
		env.Entry = append(env.Entry, q.entry)
		rec.Channels = append(rec.Channels, string(q.channel))
		rec.Kinds = append(rec.Kinds, string(q.kind))
	}
	body, err := messenger.MarshalLikeMeta(env)
	if err != nil { // cannot happen: every part was encoded before
		s.p.log.Error("encode webhook", zap.Error(err))
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

	delay := s.p.settings.WebhookRetryDelay
	for attempt := 0; attempt <= s.p.settings.WebhookRetries; attempt++ {
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
			s.p.markWebhookResult(batch, true)
			return
		}
		s.p.log.Info("webhook failed", zap.String("app", a.name), zap.Int("attempt", attempt+1), zap.Error(err))
	}
	s.mu.Lock()
	rec.Status = "failed"
	s.mu.Unlock()
	s.p.markWebhookResult(batch, false)
}

func (s *webhookSender) post(a *app, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.p.settings.WebhookTimeout)
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

// Settle blocks until every queued webhook has been delivered or has
// failed for good: the signal a test waits on instead of sleeping.
func (p *Platform) Settle(ctx context.Context) error { return p.hooks.settle(ctx) }

// Webhooks returns the record of every webhook POST, oldest first.
func (p *Platform) Webhooks() []WebhookRecord { return p.hooks.list() }

// markWebhookResult tracks how long an app's webhooks have failed and,
// past Settings.UnsubscribeAfter, unsubscribes it from the page as Meta
// does after an hour of failures.
func (p *Platform) markWebhookResult(batch []queued, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for _, q := range batch {
		pa := q.pa
		switch {
		case ok:
			pa.failingSince = time.Time{}
		case pa.failingSince.IsZero():
			pa.failingSince = now
		case now.Sub(pa.failingSince) >= p.settings.UnsubscribeAfter && len(pa.subscribed) > 0:
			p.log.Warn("webhooks disabled: app unsubscribed from page after failing",
				zap.String("app", pa.app.name), zap.String("page", string(pa.page.id)), zap.Duration("failing_for", now.Sub(pa.failingSince)))
			pa.subscribed = map[string]bool{}
		}
	}
}

// encodeEvent encodes one event as Meta would put it in an entry.
func encodeEvent(ev *messenger.Event) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(ev) // plain structs: cannot fail
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if m := ev.Message; m != nil && m.IsEcho && m.AppID != "" {
		// Every Meta example sends an echo's app_id as a bare number; bots
		// with strict types depend on it. Strings inside the event are
		// escaped, so this exact key only occurs as the field itself.
		b = bytes.Replace(b, []byte(`"app_id":"`+m.AppID+`"`), []byte(`"app_id":`+m.AppID), 1)
	}
	return b
}

// channelFor tells on which channel an app gets the thread's events.
func channelFor(t *thread, pa *pageApp) messenger.Channel {
	switch t.page.mode {
	case ModeZeroConfig:
		return messenger.ChannelMessaging
	case ModeLegacy:
		if t.owner == pa.app.id {
			return messenger.ChannelMessaging
		}
		return messenger.ChannelStandby
	}
	if t.owner == pa.app.id || (t.owner == "" && t.page.defaultApp == pa.app.id) {
		return messenger.ChannelMessaging
	}
	return messenger.ChannelStandby
}

// route sends a person's event, or an echo, to every subscribed app on the
// page: the owner on messaging, the others on standby. Callers hold p.mu.
func (p *Platform) route(t *thread, ev messenger.Event, field string) {
	p.stamp(t, &ev)
	kind := ev.Kind()
	for _, pa := range t.page.connectedApps() {
		if pa.app.callback == "" {
			continue
		}
		ch := channelFor(t, pa)
		e := ev
		if ch == messenger.ChannelMessaging {
			if !pa.subscribed[field] {
				continue
			}
		} else {
			if !pa.subscribed["standby"] || (kind == messenger.KindEcho && !pa.subscribed[field]) {
				continue
			}
			if e.Postback != nil && e.Postback.Payload != "" {
				// Only the app that sent the button gets its payload.
				pb := *e.Postback
				pb.Payload = ""
				e.Postback = &pb
			}
		}
		p.enqueue(t.page, pa, ch, &e)
	}
}

// deliverTo sends a messaging_handovers event to the named apps on the
// messaging channel. Callers hold p.mu.
func (p *Platform) deliverTo(pg *page, appIDs []messenger.ID, ev messenger.Event, field string) {
	for _, id := range appIDs {
		pa := pg.apps[id]
		if pa == nil || pa.app.callback == "" || !pa.subscribed[field] {
			continue
		}
		p.enqueue(pg, pa, messenger.ChannelMessaging, &ev)
	}
}

// deliverHandover sends a handover event to its recipients, or to every
// connected app when the setting says "all".
func (p *Platform) deliverHandover(t *thread, ev messenger.Event, to messenger.ID, all bool) {
	ev = p.handoverEvent(t, ev)
	ids := []messenger.ID{to}
	if all {
		ids = ids[:0]
		for _, pa := range t.page.connectedApps() {
			ids = append(ids, pa.app.id)
		}
	}
	p.deliverTo(t.page, ids, ev, "messaging_handovers")
}

func (p *Platform) handoverEvent(t *thread, ev messenger.Event) messenger.Event {
	p.stamp(t, &ev)
	return ev
}

// stamp fills sender, recipient and timestamp as Meta does for the kind of
// event: echoes come from the page to the person, all else the reverse.
func (p *Platform) stamp(t *thread, ev *messenger.Event) {
	if ev.Timestamp == 0 {
		ev.Timestamp = p.now().UnixMilli()
	}
	if ev.Message != nil && ev.Message.IsEcho {
		ev.Sender = &messenger.Party{ID: t.page.id}
		ev.Recipient = messenger.Party{ID: t.psid}
		return
	}
	ev.Sender = &messenger.Party{ID: t.psid}
	ev.Recipient = messenger.Party{ID: t.page.id}
}

func (p *Platform) enqueue(pg *page, pa *pageApp, ch messenger.Channel, ev *messenger.Event) {
	entry := wireEntry{ID: pg.id, Time: p.now().UnixMilli()}
	raw := encodeEvent(ev)
	if ch == messenger.ChannelStandby {
		entry.Standby = []json.RawMessage{raw}
	} else {
		entry.Messaging = []json.RawMessage{raw}
	}
	p.hooks.enqueue(queued{pa: pa, entry: entry, channel: ch, kind: ev.Kind()})
}
