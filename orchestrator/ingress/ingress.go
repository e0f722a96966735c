// Package ingress is where a webhook enters Baton: it reads the body
// within its limit, verifies Meta's signature on the raw bytes, parses the
// events and routes them inside one durable write shared with concurrent
// requests (the group commit): dedup, journal, what each event says about
// the thread's owner, the rules it arms, the deliveries it makes. Only
// then does Meta get its 200. It also sweeps what it wrote: dedup marks
// past their window and the journal past its retention.
package ingress

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/handover"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// DedupWindow is how long a webhook event is remembered to drop Meta's
// redeliveries (Meta retries for up to 36 hours).
const DedupWindow = 48 * time.Hour

// Rules arms the handover rules an event calls for, inside the ingress
// transaction, and counts what they did once it committed.
type Rules interface {
	Arm(tx store.Tx, p *topology.Page, rcv *topology.App, ev *messenger.Event, th *store.Thread, now time.Time) (handover.Firing, error)
	Fired(fs []handover.Firing)
}

// Deps are what ingress needs.
type Deps struct {
	Store    store.Store
	Topology *topology.Topology
	Ledger   *threads.Ledger
	Rules    Rules
	Clock    clock.Clock
	Log      *zap.Logger
	Metrics  *metrics.Set
	Errors   *recent.Errors
	Webhooks config.Webhooks
	// Budget bounds the webhook bodies held at once; it outlives a
	// reload (a Server keeps it). Nil: New makes one of
	// Webhooks.MaxInflightBytes.
	Budget *Budget
	// Deliver hands committed deliveries to the dispatcher.
	Deliver func([]store.Delivery)
	// Reconcile asks Meta about a thread whose events contradict the
	// record.
	Reconcile func(k store.ThreadKey, why string)
	// Wake is called after a commit that may have armed a timer or job.
	Wake func()
	// LearnPerson is told, after the commit, of a person whose first
	// message Baton just recorded (to ask Meta for their name); nil: no
	// one is told.
	LearnPerson func(k store.ThreadKey)
	// Transcribed is told, after the commit, that threads got new lines
	// in their transcript (the console updates live); nil: no one is.
	Transcribed func(ks []store.ThreadKey)
	// Cluster, when set, makes this one replica's ingress of several
	// (cluster.go): webhooks are queued for their threads' owners, and
	// RunRouter routes the queue of the shards this replica owns.
	Cluster *Cluster
}

// Ingress serves GET and POST /webhooks/{app}.
type Ingress struct {
	d Deps
	// verifiers check each hosted app's webhooks, by app name.
	verifiers map[string]*messenger.Verifier
	// routerBell wakes RunRouter: this replica queued events it routes.
	routerBell *clock.Bell
}

// New builds the ingress.
func New(d Deps) *Ingress {
	if d.Budget == nil {
		d.Budget = NewBudget(d.Webhooks.MaxInflightBytes)
	}
	in := &Ingress{d: d, routerBell: clock.NewBell(), verifiers: map[string]*messenger.Verifier{}}
	for _, a := range d.Topology.Apps() {
		if a.Hosted {
			in.verifiers[a.Name] = messenger.NewVerifier(a.Secret, messenger.VerifyOptions{AllowSHA1: d.Webhooks.AllowSHA1})
		}
	}
	return in
}

// Register adds the webhook routes to r.
func (in *Ingress) Register(r *mux.Router) {
	r.HandleFunc("/webhooks/{app}", in.verify).Methods(http.MethodGet)
	r.HandleFunc("/webhooks/{app}", in.receive).Methods(http.MethodPost)
}

// verify answers Meta's subscription handshake.
func (in *Ingress) verify(w http.ResponseWriter, r *http.Request) {
	a := in.d.Topology.App(mux.Vars(r)["app"])
	if a == nil || !a.Hosted {
		http.Error(w, "unknown app", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	if q.Get("hub.mode") != "subscribe" || subtle.ConstantTimeCompare([]byte(q.Get("hub.verify_token")), []byte(a.VerifyToken)) != 1 {
		http.Error(w, "verify token mismatch", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// receive acknowledges a webhook once its events are durable: one
// transaction (shared with concurrent requests) journals them, applies
// what they say about ownership and enqueues the deliveries. Only a failed
// write answers 5xx, so that Meta retries; a signed body Baton cannot use
// is acknowledged and shown in recent errors, never retried forever.
func (in *Ingress) receive(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := mux.Vars(r)["app"]
	a := in.d.Topology.App(name)
	if a != nil && !a.Hosted {
		a = nil
	}
	code := in.handle(w, r, name, a)
	// Only configured names label the series: anyone can make up a path.
	label := unknownApp
	if a != nil {
		label = a.Name
	}
	in.d.Metrics.Requests.WithLabelValues(label, strconv.Itoa(code)).Inc()
	if code == http.StatusOK {
		in.d.Metrics.AckSeconds.Observe(time.Since(start).Seconds())
	}
}

// unknownApp is the app label of webhooks to a name Baton does not host.
const unknownApp = "unknown"

// The refusals of requests not (yet) known to come from Meta: anyone can
// send them, so recent errors keeps them apart and logs them sampled.
const (
	refusedApp       = "unknown_app"
	refusedSignature = "signature"
	refusedTooLarge  = "body_too_large"
	refusedSlow      = "body_too_slow"
	refusedBusy      = "bodies_in_flight"
)

// budgetWait is how long a webhook waits for its share of the body
// budget before it is answered 503: long enough to ride out a burst,
// short against Meta's patience (it retries a 5xx, with backoff, for
// hours).
const budgetWait = time.Second

// busyRetryAfter is the Retry-After of a webhook refused for the budget,
// in seconds. Meta keeps its own retry schedule; other senders may read
// it.
const busyRetryAfter = "5"

func (in *Ingress) handle(w http.ResponseWriter, r *http.Request, name string, a *topology.App) int {
	if a == nil {
		in.d.Errors.Record(recent.Error{Kind: "webhook", Refusal: refusedApp, Message: "webhook for an app not hosted here: " + quoteShort(name)})
		http.Error(w, "unknown app", http.StatusNotFound)
		return http.StatusNotFound
	}
	// The body's share of the budget: what it can make Baton hold. A
	// promise over max_body is refused unread.
	share := r.ContentLength
	switch {
	case share > in.d.Webhooks.MaxBody:
		in.d.Errors.Record(recent.Error{Kind: "webhook", Refusal: refusedTooLarge, App: name, Message: fmt.Sprintf("body of %d bytes refused unread: over %d", share, in.d.Webhooks.MaxBody)})
		w.Header().Set("Connection", "close")
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return http.StatusRequestEntityTooLarge
	case share < 0: // no Content-Length (chunked): it may send up to max_body
		share = in.d.Webhooks.MaxBody
	}
	if !in.d.Budget.Acquire(r.Context(), share, budgetWait) {
		in.d.Metrics.BodyBudgetRefusals.WithLabelValues(name).Inc()
		in.d.Errors.Record(recent.Error{Kind: "webhook", Refusal: refusedBusy, App: name,
			Message: fmt.Sprintf("a %d-byte body refused for now: webhooks.max_inflight_bytes (%d) in use by other bodies for %s", share, in.d.Webhooks.MaxInflightBytes, budgetWait)})
		w.Header().Set("Retry-After", busyRetryAfter)
		w.Header().Set("Connection", "close") // its body is unread
		http.Error(w, "busy, retry", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	// Held until the answer: the body stays in memory through the
	// signature check, the parse and the durable write.
	defer in.d.Budget.Release(share)
	body, err := readBody(w, r, in.d.Webhooks.MaxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooBig):
			in.d.Errors.Record(recent.Error{Kind: "webhook", Refusal: refusedTooLarge, App: name, Message: fmt.Sprintf("body over %d bytes refused", tooBig.Limit)})
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return http.StatusRequestEntityTooLarge
		case errors.As(err, &netErr) && netErr.Timeout():
			// The server's read timeout: the sender was too slow.
			in.d.Errors.Record(recent.Error{Kind: "webhook", Refusal: refusedSlow, App: name, Message: "body not received within the read timeout"})
			w.Header().Set("Connection", "close")
			http.Error(w, "body too slow", http.StatusRequestTimeout)
			return http.StatusRequestTimeout
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return http.StatusBadRequest
	}
	if err := in.verifiers[a.Name].Verify(r.Header, body); err != nil {
		in.d.Errors.Record(recent.Error{Kind: "webhook", Refusal: refusedSignature, App: name, Message: "signature refused: " + err.Error()})
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return http.StatusUnauthorized
	}
	env, err := messenger.ParseWebhook(body)
	if err != nil {
		in.d.Metrics.Events.WithLabelValues(name, "unusable").Inc()
		in.d.Errors.Record(recent.Error{Kind: "webhook", App: name, Message: "unusable body acknowledged: " + err.Error()})
		ack(w)
		return http.StatusOK
	}
	if in.d.Cluster != nil {
		err = in.accept(r.Context(), name, a, env)
	} else {
		err = in.d.Store.Update(r.Context(), func(tx store.Tx) error { return in.write(tx, name, a, env) })
	}
	if err != nil {
		in.d.Log.Error("webhook not stored (or its sender gave up waiting); Meta will retry", zap.String("app", name), zap.Error(err))
		http.Error(w, "not stored, retry", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	ack(w)
	return http.StatusOK
}

// write routes one webhook's events in tx, one caller's share of a group
// commit, and leaves what follows to the commit.
func (in *Ingress) write(tx store.Tx, name string, a *topology.App, env *messenger.Envelope) error {
	out := &routed{}
	if err := in.routeEnvelope(tx, a, env, in.d.Clock.Now(), out); err != nil {
		return err
	}
	// What follows the write runs on its commit, whether or not the
	// sender still waits: a sender that gave up gets a 5xx and retries,
	// and its retry is a duplicate of a routed event.
	tx.AfterCommit(func() { in.committed(name, out) })
	return nil
}

// committed does what follows the durable write, once it is on disk:
// counts, recent errors, the deliveries to the dispatcher, timers woken,
// reconciles queued. It runs in the store's commit and must stay quick.
func (in *Ingress) committed(app string, out *routed) {
	in.d.Metrics.Events.WithLabelValues(app, "accepted").Add(float64(out.accepted))
	in.d.Metrics.Events.WithLabelValues(app, "duplicate").Add(float64(out.duplicates))
	in.d.Metrics.Events.WithLabelValues(app, "unusable").Add(float64(len(out.unusable)))
	for _, e := range append(out.unusable, out.problems...) {
		in.d.Errors.Record(e)
	}
	in.d.Rules.Fired(out.firings)
	in.d.Deliver(out.deliveries)
	// Most webhooks arm nothing: the loops are woken only when a rule
	// wrote a job (a new owner wakes them through the ledger), so that a
	// busy page costs them no reads.
	for _, f := range out.firings {
		if f.Armed() {
			in.d.Wake()
			break
		}
	}
	for _, k := range out.reconcile {
		in.d.Reconcile(k, "an event came on standby for the app we took as owner")
	}
	for _, k := range out.newPeople {
		in.d.LearnPerson(k)
	}
	if len(out.lines) > 0 && in.d.Transcribed != nil {
		in.d.Transcribed(out.lines)
	}
}

// readBody reads a request body of at most max bytes into memory that
// grows with the bytes that arrived, not with what the sender promised: a
// stranger who announces a megabyte and sends ten bytes costs at most
// firstRead. A body that fits in firstRead, as Meta's do, takes one
// buffer of its exact size and no copy (io.ReadAll starts at 512 bytes
// and copies a 1 KB webhook three times on the way).
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, max)
	n := r.ContentLength // -1: unknown
	if n > max {
		n = -1 // read what comes: MaxBytesReader refuses past max
	}
	size := int64(firstRead)
	if n >= 0 {
		size = min(n, firstRead)
	}
	body := make([]byte, 0, size)
	for int64(len(body)) != n { // net/http ends the body at Content-Length
		if len(body) == cap(body) {
			grow := int64(cap(body)) // doubling: each byte copied about once
			if n >= 0 {
				grow = min(grow, n-int64(len(body)))
			}
			body = slices.Grow(body, int(grow))
		}
		m, err := rd.Read(body[len(body):cap(body)])
		body = body[:len(body)+m]
		switch {
		case int64(len(body)) == n:
		case err == io.EOF && n >= 0:
			return nil, io.ErrUnexpectedEOF // shorter than it said
		case err == io.EOF:
			return body, nil
		case err != nil:
			return nil, err
		}
	}
	return body, nil
}

// firstRead is the most readBody allocates before bytes arrive.
const firstRead = 16 << 10

func ack(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "EVENT_RECEIVED")
}
