package forward

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/orchestrator/apierr"
)

// The headers of a forwarded request. The client's own headers of these
// names are dropped: only a replica sets them, and only Internal reads
// them.
const (
	// HeaderForwardedBy is the id of the replica that forwarded it.
	HeaderForwardedBy = "X-Baton-Forwarded-By"
	// HeaderClient is the address of the client that sent the request to
	// that replica: what the owner's rate limits and logs see.
	HeaderClient = "X-Baton-Client"
	// HeaderTimestamp is when it was signed, in Unix seconds.
	HeaderTimestamp = "X-Baton-Timestamp"
	// HeaderBodySHA256 is the body's SHA-256 in hex: signed, so that
	// Internal checks the signature before it reads a body.
	HeaderBodySHA256 = "X-Baton-Body-Sha256"
	// HeaderSignature is the HMAC-SHA256, in hex, of the rest (signed).
	HeaderSignature = "X-Baton-Signature"
)

// MaxSkew is how far from the receiver's clock a forwarded request may
// have been signed: a request seen on the wire cannot be sent again
// later, and the replicas' clocks (NTP) are well within it.
const MaxSkew = 30 * time.Second

var ourHeaders = []string{HeaderForwardedBy, HeaderClient, HeaderTimestamp, HeaderBodySHA256, HeaderSignature}

// sign sets on out the headers of a request forwarded for client, with
// body, signed at now.
func (f *Forwarder) sign(out *http.Request, client string, body []byte, now time.Time) {
	for _, k := range ourHeaders {
		out.Header.Del(k)
	}
	sum := sha256.Sum256(body)
	ts := strconv.FormatInt(now.Unix(), 10)
	bodyHash := hex.EncodeToString(sum[:])
	out.Header.Set(HeaderForwardedBy, f.self)
	out.Header.Set(HeaderClient, client)
	out.Header.Set(HeaderTimestamp, ts)
	out.Header.Set(HeaderBodySHA256, bodyHash)
	out.Header.Set(HeaderSignature, hex.EncodeToString(f.mac(out.Method, out.URL.RequestURI(), ts, client, f.self, bodyHash)))
}

// mac is the signature of a forwarded request. Its parts hold no newline
// (a method, a request URI and header values cannot), so the joined text
// is one request's only.
func (f *Forwarder) mac(method, requestURI, ts, client, by, bodyHash string) []byte {
	m := hmac.New(sha256.New, f.secret)
	for _, s := range []string{"baton-forward-v1", method, requestURI, ts, client, by, bodyHash} {
		_, _ = io.WriteString(m, s)
		_, _ = m.Write([]byte{'\n'})
	}
	return m.Sum(nil)
}

// forwardedKey marks the context of a request Internal let in.
type forwardedKey struct{}

// ForwardedBy is the replica that forwarded the request of ctx, when
// Internal let it in.
func ForwardedBy(ctx context.Context) (string, bool) {
	by, ok := ctx.Value(forwardedKey{}).(string)
	return by, ok
}

// Internal serves the requests other replicas forwarded: signed with the
// cluster secret, within MaxSkew of this replica's clock, a body no
// larger than MaxBody and the one signed. Those are served by h with the
// client's address as RemoteAddr and ForwardedBy set, and never forwarded
// again; the rest are refused 401 (413 for a body too large) before h.
func (f *Forwarder) Internal(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		by, client, reason := f.check(r)
		if reason != "" {
			f.refuse(w, r, reason, http.StatusUnauthorized)
			return
		}
		if r.ContentLength > f.maxBody {
			f.refuse(w, r, "too_large", http.StatusRequestEntityTooLarge)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, f.maxBody+1))
		switch {
		case err != nil:
			f.refuse(w, r, "body_error", http.StatusBadRequest)
			return
		case int64(len(body)) > f.maxBody:
			f.refuse(w, r, "too_large", http.StatusRequestEntityTooLarge)
			return
		}
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != r.Header.Get(HeaderBodySHA256) {
			f.refuse(w, r, "body_mismatch", http.StatusUnauthorized)
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		r.RemoteAddr = client
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardedKey{}, by)))
	})
}

// check checks r's signature and age, before any of its body is read,
// and returns who forwarded it for whom, or why it is refused: unsigned,
// malformed, bad_signature, stale.
func (f *Forwarder) check(r *http.Request) (by, client, reason string) {
	sig, ts := r.Header.Get(HeaderSignature), r.Header.Get(HeaderTimestamp)
	by, client = r.Header.Get(HeaderForwardedBy), r.Header.Get(HeaderClient)
	if sig == "" {
		return "", "", "unsigned"
	}
	got, err := hex.DecodeString(sig)
	unix, terr := strconv.ParseInt(ts, 10, 64)
	if err != nil || terr != nil || by == "" || client == "" {
		return "", "", "malformed"
	}
	// The signature first, so that "stale" is only ever said of a
	// replica's request: a clock that drifted, worth a warning.
	if !hmac.Equal(got, f.mac(r.Method, r.RequestURI, ts, client, by, r.Header.Get(HeaderBodySHA256))) {
		return "", "", "bad_signature"
	}
	if skew := f.now().Sub(time.Unix(unix, 0)); skew > MaxSkew || skew < -MaxSkew {
		return "", "", "stale"
	}
	if by == f.self {
		// This replica sent it to itself: it was taking the shard when
		// the request came (Wrap's wait for the owner), and serves it now
		// with the parts rebuilt for it.
		f.log.Debug("a forwarded request from this replica itself", zap.String("path", r.URL.Path))
	}
	return by, client, ""
}

// refuse answers a request Internal does not let in; its log lines are
// sampled, since anyone who reaches the listener can send them.
func (f *Forwarder) refuse(w http.ResponseWriter, r *http.Request, reason string, status int) {
	if f.refused != nil {
		f.refused.WithLabelValues(reason).Inc()
	}
	if ok, missed := f.sampled.allow("refuse:" + reason); ok {
		f.log.Warn("internal listener refused a request", zap.String("reason", reason), zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.String("forwarded_by", r.Header.Get(HeaderForwardedBy)),
			zap.Int("not_logged", missed))
	}
	code, msg := apierr.Unauthorized, "not a request signed by a replica of this cluster"
	if status == http.StatusRequestEntityTooLarge {
		code, msg = apierr.Invalid, "body larger than a forwarded request may be"
	} else if status == http.StatusBadRequest {
		code, msg = apierr.Invalid, "body not read"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

// sampler lets a log line of each kind through at most once per period,
// and counts the ones it held back.
type sampler struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newSampler(every time.Duration, now func() time.Time) *sampler {
	return &sampler{every: every, now: now, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether a line of kind is logged now, and how many were
// held back since the last one. Kinds come from this package's code,
// never from a request, so the maps stay small.
func (s *sampler) allow(kind string) (bool, int) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.last[kind]; ok && now.Sub(last) < s.every {
		s.held[kind]++
		return false, 0
	}
	n := s.held[kind]
	s.last[kind], s.held[kind] = now, 0
	return true, n
}
