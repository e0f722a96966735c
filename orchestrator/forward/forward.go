// Package forward gives a request for a thread another replica holds the
// answer of that thread's owner. Several Baton replicas share one
// PostgreSQL store; each thread is in a shard, and each shard is one
// replica's at a time. A handler asked to act on a thread of another
// replica's shard answers 421 Misdirected Request with the shard in
// apierr.ShardHeader, before doing anything. Wrap does not send that
// answer: it sends the same request, once, to the shard's owner over the
// owner's internal listener, signed with the secret the replicas share,
// and answers with what the owner answered. Internal is that listener's
// side: it lets in what another replica signed and serves it, never
// forwarding it again.
//
// Nothing is forwarded twice. An owner that answers 421 itself (the shard
// moved while the request was on its way), an owner nobody knows, this
// replica named as the owner, an owner that does not answer, or a body too
// large to keep for the replay: the client is told 503 with Retry-After,
// and its retry finds the new owner.
package forward

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/batonhq/baton/orchestrator/apierr"
)

// Owners says who holds a shard now (orchestrator/cluster's Member is
// one): the replica's id and the address of its internal listener, a URL
// (http://baton-2:8090) or host:port.
type Owners interface {
	Owner(shard int) (id, addr string, ok bool)
}

// Options are what a Forwarder needs.
type Options struct {
	// Self is this replica's id, as Owners names it.
	Self string
	// Secret signs forwarded requests; the same on every replica, at
	// least 16 bytes.
	Secret []byte
	Owners Owners
	// Client makes the forwarded calls: pooled, keep-alive, no
	// redirects, a timeout. Nil: one of New's own (Close closes its idle
	// connections).
	Client *http.Client
	// MaxBody is the largest request body kept for a replay (default
	// 1 MiB): a larger request that must be forwarded is answered 503,
	// and Internal refuses a larger one.
	MaxBody int64
	Log     *zap.Logger
	// Registerer, if set, gets baton_cluster_forwarded_total{outcome}
	// and baton_cluster_forward_refused_total{reason}.
	Registerer prometheus.Registerer
	// Unavailable writes the 503 of a request no replica can answer now,
	// in the shape its API answers errors (Retry-After is set already).
	// Nil: WriteUnavailable, apierr's shape; /graph wants Meta's
	// (graphapi.WriteUnavailable).
	Unavailable func(w http.ResponseWriter, r *http.Request)
	// OwnerWait is how long a request waits for its shard's owner during
	// a hand-off (none known yet, this replica taking it, an owner that
	// just gave it up) before it is answered 503 (default 2 s; negative:
	// one try).
	OwnerWait time.Duration
}

// DefaultMaxBody is Options.MaxBody's default: the largest body of the
// routes that name a thread, but /graph's uploads.
const DefaultMaxBody = 1 << 20

// retryAfter is what a client is told to wait when the owner is changing:
// a hand-off takes milliseconds, a lease that lapses a TTL, and a client
// that retries finds whoever holds the shard by then.
const retryAfter = "1"

// Forwarder forwards misdirected requests (Wrap) and serves forwarded
// ones (Internal).
type Forwarder struct {
	self        string
	secret      []byte
	owners      Owners
	client      *http.Client
	ownClient   bool
	maxBody     int64
	ownerWait   time.Duration
	log         *zap.Logger
	unavailable func(http.ResponseWriter, *http.Request)
	forwarded   *prometheus.CounterVec // nil: not counted
	refused     *prometheus.CounterVec
	sampled     *sampler
	now         func() time.Time
}

// New checks opt and builds the Forwarder.
func New(opt Options) (*Forwarder, error) {
	switch {
	case opt.Self == "":
		return nil, errors.New("forward: no replica id (Self)")
	case len(opt.Secret) < 16:
		return nil, fmt.Errorf("forward: the cluster secret has %d bytes, want at least 16", len(opt.Secret))
	case opt.Owners == nil:
		return nil, errors.New("forward: no Owners")
	}
	f := &Forwarder{self: opt.Self, secret: bytes.Clone(opt.Secret), owners: opt.Owners, client: opt.Client,
		maxBody: opt.MaxBody, ownerWait: opt.OwnerWait, log: opt.Log, unavailable: opt.Unavailable, now: time.Now}
	switch {
	case f.ownerWait == 0:
		f.ownerWait = DefaultOwnerWait
	case f.ownerWait < 0:
		f.ownerWait = 0
	}
	if f.client == nil {
		f.client, f.ownClient = newClient(), true
	}
	if f.maxBody <= 0 {
		f.maxBody = DefaultMaxBody
	}
	if f.log == nil {
		f.log = zap.NewNop()
	}
	if f.unavailable == nil {
		f.unavailable = WriteUnavailable
	}
	f.sampled = newSampler(time.Second, f.now)
	if reg := opt.Registerer; reg != nil {
		var err error
		if f.forwarded, err = counter(reg, "baton_cluster_forwarded_total",
			"Requests for a thread another replica holds, by what became of them: forwarded (the owner answered), moved (the owner answered 421 too), no_owner, self (this replica named the owner), too_large, body_error, unreachable, canceled.", "outcome"); err != nil {
			return nil, err
		}
		if f.refused, err = counter(reg, "baton_cluster_forward_refused_total",
			"Requests the internal listener refused, by reason: unsigned, malformed, bad_signature, stale, too_large, body_mismatch.", "reason"); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// newClient is the pool of calls to the other replicas: they are few and
// near, so connections are kept, dials are short, and nothing is
// decompressed or followed (the owner's bytes are the client's).
func newClient() *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // never an environment's proxy between replicas
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	// The owner's answer may wait on Meta (a Graph call is bounded well
	// under this); a client waits for it no longer than it would for the
	// owner itself.
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// counter registers a counter, or takes the one a Forwarder of an
// earlier generation (a reload) registered: counts go on.
func counter(reg prometheus.Registerer, name, help, label string) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return old, nil
			}
		}
		return nil, fmt.Errorf("forward: register %s: %w", name, err)
	}
	return c, nil
}

// Close closes the idle connections of the client New made.
func (f *Forwarder) Close() {
	if f.ownClient {
		f.client.CloseIdleConnections()
	}
}

// Wrap serves through h. An answer of 421 carrying apierr.ShardHeader is
// not sent: the request goes to that shard's owner, and the owner's
// answer is the client's. Every other answer passes untouched, streamed
// as h writes and flushes it. A request that Internal let in is served by
// h alone: one hop, whatever the chain.
func (f *Forwarder) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := ForwardedBy(r.Context()); ok {
			h.ServeHTTP(w, r)
			return
		}
		var tee *teeBody
		if r.Body != nil && r.Body != http.NoBody {
			tee = &teeBody{src: r.Body, max: f.maxBody}
			r.Body = tee
		}
		// What was set before h (an outer middleware's headers) is kept
		// for the answer that replaces h's.
		iw := &interceptor{w: w, before: w.Header().Clone()}
		h.ServeHTTP(iw, r)
		if !iw.intercepted {
			return
		}
		hd := w.Header()
		clear(hd)
		for k, v := range iw.before {
			hd[k] = v
		}
		f.forward(w, r, iw.shard, tee)
	})
}

// forward answers r, which h found misdirected to shard, with the answer
// of the shard's owner, or 503.
func (f *Forwarder) forward(w http.ResponseWriter, r *http.Request, shard int, tee *teeBody) {
	start := time.Now()
	fields := []zap.Field{zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("shard", shard)}
	body, outcome := tee.rest()
	if outcome != "" {
		f.busy(w, r, outcome, append(fields, zap.Int64("max_body", f.maxBody), zap.Error(tee.err)))
		return
	}
	resp, outcome := f.toOwner(r, shard, body, &fields)
	if outcome != "" {
		f.busy(w, r, outcome, fields)
		return
	}
	defer resp.Body.Close()
	hd := w.Header()
	for k, v := range resp.Header {
		hd[k] = v
	}
	dropHopByHop(hd)
	f.count("forwarded") // before the client can see the answer
	w.WriteHeader(resp.StatusCode)
	err := copyBody(w, resp.Body)
	fields = append(fields, zap.Int("status", resp.StatusCode), zap.Duration("took", time.Since(start)))
	if err != nil {
		f.warn("forwarded answer cut short", "cut_short", append(fields, zap.Error(err)))
		return
	}
	f.log.Debug("forwarded to the thread's owner", fields...)
}

// Send makes a call of its own on shard's owner on behalf of r, as r's
// client would have: r's headers (its credentials) to method and path,
// without a body, signed as a forwarded request. An operator's action
// over many threads (retry all of a bot's dead letters) reaches each
// thread's owner this way. It returns the owner's status and (up to
// 64 KiB of) its answer.
func (f *Forwarder) Send(r *http.Request, shard int, method, path string) (int, []byte, error) {
	sub := r.Clone(r.Context())
	sub.Method, sub.URL, sub.Body, sub.ContentLength = method, &url.URL{Path: path}, http.NoBody, 0
	fields := []zap.Field{zap.String("method", method), zap.String("path", path), zap.Int("shard", shard)}
	resp, outcome := f.toOwner(sub, shard, nil, &fields)
	if outcome != "" {
		f.count(outcome)
		return 0, nil, fmt.Errorf("forward to the owner of shard %d: %s", shard, outcome)
	}
	defer resp.Body.Close()
	f.count("forwarded")
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, body, err
}

// DefaultOwnerWait is Options.OwnerWait's default: a shard handed off
// between replicas has no owner for up to a tick of the new owner's (a
// second), and a client served a little later is better served than one
// told to retry.
const DefaultOwnerWait = 2 * time.Second

// toOwner sends r to the owner of shard, waiting up to OwnerWait for one
// (a hand-off under way: none known yet, or this replica named while it
// takes the shard, or an owner that no longer holds it), and returns the
// owner's answer, or the outcome that makes it a 503.
func (f *Forwarder) toOwner(r *http.Request, shard int, body []byte, fields *[]zap.Field) (*http.Response, string) {
	deadline := time.Now().Add(f.ownerWait)
	for attempt := 0; ; attempt++ {
		id, addr, ok := f.owners.Owner(shard)
		outcome := ""
		switch {
		case !ok:
			outcome = "no_owner"
		case id == f.self && attempt == 0:
			// h says another replica holds the shard, Owners says this
			// one: the lease is being won this instant, and this
			// replica's parts are being rebuilt for it. Its own internal
			// listener serves the rebuilt ones, after a moment.
			outcome = "self"
		default:
			out, err := f.request(r, addr, body)
			if err != nil {
				*fields = append(*fields, zap.String("addr", addr), zap.Error(withoutURL(err)))
				return nil, "unreachable"
			}
			resp, err := f.client.Do(out)
			if err != nil {
				*fields = append(*fields, zap.String("owner", id), zap.String("addr", addr), zap.Error(withoutURL(err)))
				if r.Context().Err() != nil {
					return nil, "canceled" // the client went: nobody to answer
				}
				return nil, "unreachable"
			}
			if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get(apierr.ShardHeader) == "" {
				*fields = append(*fields, zap.String("owner", id))
				return resp, ""
			}
			// The owner does not hold it either: ownership moved meanwhile.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keeps the connection
			resp.Body.Close()
			outcome = "moved"
		}
		wait := 50 * time.Millisecond
		if time.Now().Add(wait).After(deadline) {
			return nil, outcome
		}
		select {
		case <-r.Context().Done():
			return nil, "canceled"
		case <-time.After(wait):
		}
	}
}

// busy answers 503: no replica can answer r now.
func (f *Forwarder) busy(w http.ResponseWriter, r *http.Request, outcome string, fields []zap.Field) {
	f.count(outcome)
	if outcome == "canceled" {
		f.log.Debug("not forwarded: the client went", fields...)
	} else {
		f.warn("not forwarded to the thread's owner", outcome, append(fields, zap.String("outcome", outcome)))
	}
	w.Header().Set("Retry-After", retryAfter)
	f.unavailable(w, r)
}

func (f *Forwarder) count(outcome string) {
	if f.forwarded != nil {
		f.forwarded.WithLabelValues(outcome).Inc()
	}
}

// warn logs a failure, at most once a second per kind: during a
// rebalance every request for a moving shard fails alike.
func (f *Forwarder) warn(msg, kind string, fields []zap.Field) {
	if ok, missed := f.sampled.allow("forward:" + kind); ok {
		f.log.Warn(msg, append(fields, zap.Int("not_logged", missed))...)
	}
}

// request is r to the owner at addr: the same method, request URI,
// headers but the hop-by-hop ones, Host and body, signed.
func (f *Forwarder) request(r *http.Request, addr string, body []byte) (*http.Request, error) {
	base := strings.TrimSuffix(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	dropHopByHop(out.Header)
	out.Header.Del("Expect") // the body is here already
	out.Header.Del("Content-Length")
	out.Host = r.Host // an Origin check on the owner compares with it
	f.sign(out, r.RemoteAddr, body, f.now())
	return out, nil
}

// withoutURL is err without the URL net/http puts in its errors: a query
// can hold a token (/graph's access_token), which is never logged.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// hopByHop are the headers of one connection (RFC 9110 §7.6.1), never
// passed on.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func dropHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
}

// copyBody copies the owner's answer to the client as it comes: an owner
// that streams streams on.
func copyBody(w http.ResponseWriter, body io.Reader) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			_ = rc.Flush()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// WriteUnavailable is the 503 of a request no replica can answer now, in
// apierr's shape: the thread's owner is changing.
func WriteUnavailable(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": apierr.OwnerChanging, "message": "this thread's owner is changing: retry in a second", "retryable": true}})
}
