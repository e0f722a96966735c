package orchestrator

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/store"
)

// verifyWebhook answers Meta's subscription handshake.
func (o *Orchestrator) verifyWebhook(w http.ResponseWriter, r *http.Request) {
	a := o.apps[mux.Vars(r)["app"]]
	if a == nil || !a.hosted {
		http.Error(w, "unknown app", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	if q.Get("hub.mode") != "subscribe" || subtle.ConstantTimeCompare([]byte(q.Get("hub.verify_token")), []byte(a.verifyToken)) != 1 {
		http.Error(w, "verify token mismatch", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// receiveWebhook acknowledges a webhook once its events are durable: one
// transaction (shared with concurrent requests) journals them, applies
// what they say about ownership and enqueues the deliveries. Only a failed
// write answers 5xx, so that Meta retries; a signed body Baton cannot use
// is acknowledged and shown in recent errors, never retried forever.
func (o *Orchestrator) receiveWebhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := mux.Vars(r)["app"]
	code := o.handleWebhook(w, r, name)
	o.metrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
	if code == http.StatusOK {
		o.metrics.ackSeconds.Observe(time.Since(start).Seconds())
	}
}

// readBody reads a request body of at most max bytes. When the sender said
// how long it is, as Meta does, one buffer of that size takes it; io.ReadAll
// starts at 512 bytes and copies a 1 KB webhook three times on the way.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, max)
	if n := r.ContentLength; n > 0 && n <= max {
		body := make([]byte, n)
		if _, err := io.ReadFull(rd, body); err != nil {
			return nil, err
		}
		return body, nil // net/http ends the body at Content-Length
	}
	return io.ReadAll(rd)
}

func (o *Orchestrator) handleWebhook(w http.ResponseWriter, r *http.Request, name string) int {
	a := o.apps[name]
	if a == nil || !a.hosted {
		http.Error(w, "unknown app", http.StatusNotFound)
		return http.StatusNotFound
	}
	body, err := readBody(w, r, o.cfg.Webhooks.MaxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			o.recordError(RecentError{Kind: "webhook", App: name, Message: fmt.Sprintf("body over %d bytes refused", tooBig.Limit)})
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return http.StatusRequestEntityTooLarge
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return http.StatusBadRequest
	}
	if err := messenger.Verify(r.Header, body, a.secret, messenger.VerifyOptions{AllowSHA1: o.cfg.Webhooks.AllowSHA1}); err != nil {
		o.recordError(RecentError{Kind: "webhook", App: name, Message: "signature refused: " + err.Error()})
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return http.StatusUnauthorized
	}
	env, err := messenger.ParseEnvelope(body)
	if err != nil {
		o.metrics.events.WithLabelValues(name, "unusable").Inc()
		o.recordError(RecentError{Kind: "webhook", App: name, Message: "unusable body acknowledged: " + err.Error()})
		ack(w)
		return http.StatusOK
	}
	var out routed
	err = o.store.Update(r.Context(), func(tx store.Tx) error {
		out = routed{}
		now := o.clock.Now()
		var err error
		env.Each(func(en *messenger.Entry, ch messenger.Channel, ev *messenger.Event) {
			if err != nil {
				return
			}
			p := o.pages[string(en.ID)]
			switch {
			case p == nil:
				out.unusable = append(out.unusable, RecentError{Kind: "webhook", App: name, Page: string(en.ID), Message: "event for a page not in the config"})
			case !p.hasApp(a.id):
				out.unusable = append(out.unusable, RecentError{Kind: "webhook", App: name, Page: p.id, Message: "app is not configured on this page"})
			case ev.Recipient.ID == "" && ev.Sender == nil:
				out.unusable = append(out.unusable, RecentError{Kind: "webhook", App: name, Page: p.id, Message: "event without sender or recipient"})
			default:
				err = o.route(tx, a, p, ch, ev, now, &out)
			}
		})
		return err
	})
	if err != nil {
		o.log.Error("webhook not stored; Meta will retry", zap.String("app", name), zap.Error(err))
		http.Error(w, "not stored, retry", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	o.metrics.events.WithLabelValues(name, "accepted").Add(float64(out.accepted))
	o.metrics.events.WithLabelValues(name, "duplicate").Add(float64(out.duplicates))
	o.metrics.events.WithLabelValues(name, "unusable").Add(float64(len(out.unusable)))
	for _, e := range out.unusable {
		o.recordError(e)
	}
	o.countFirings(out.firings)
	o.dispatcher.add(out.deliveries)
	o.notifyTimers()
	for _, k := range out.reconcile {
		go o.reconcileLogged(k, "an event came on standby for the app we took as owner")
	}
	ack(w)
	return http.StatusOK
}

func ack(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "EVENT_RECEIVED")
}
