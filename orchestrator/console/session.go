package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/batonhq/baton/web/signin"
)

// Sessions are stateless: a cookie holds its expiry and a random nonce,
// signed with HMAC-SHA256 under a key derived from the admin token. A
// restart keeps every operator signed in; a new admin token signs every
// one out. The CSRF token is a second MAC of the same value, so it is
// bound to the session and needs no storage either.

const (
	cookieName = "baton_console"
	// CSRFHeader carries the session's CSRF token on every request that
	// changes something (the console's JS sets it; a form on another
	// site cannot).
	CSRFHeader = "X-Baton-CSRF"
	sessionTTL = 12 * time.Hour
)

// Session errors: the first asks to sign in (401), the others refuse a
// signed-in browser's request (403).
var (
	ErrNoSession = errors.New("not signed in to the console")
	ErrCSRF      = errors.New("missing or wrong CSRF token (" + CSRFHeader + ")")
	ErrOrigin    = errors.New("request from another origin")
)

type sessions struct {
	key   []byte
	token []byte // the admin token, compared in constant time at sign-in
	now   func() time.Time
}

func newSessions(adminToken string, now func() time.Time) *sessions {
	m := hmac.New(sha256.New, []byte(adminToken))
	m.Write([]byte("baton console session key v1"))
	return &sessions{key: m.Sum(nil), token: []byte(adminToken), now: now}
}

func (s *sessions) mac(label string, payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(label))
	m.Write(payload)
	return m.Sum(nil)
}

// signIn checks the admin token and returns the new session's cookie.
func (s *sessions) signIn(token string, secure bool) (*http.Cookie, bool) {
	if len(s.token) == 0 || subtle.ConstantTimeCompare([]byte(token), s.token) != 1 {
		return nil, false
	}
	payload := make([]byte, 8, 24)
	exp := s.now().Add(sessionTTL)
	binary.BigEndian.PutUint64(payload, uint64(exp.Unix()))
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	payload = append(payload, nonce...)
	enc := base64.RawURLEncoding
	value := enc.EncodeToString(payload) + "." + enc.EncodeToString(s.mac("session", payload))
	return &http.Cookie{Name: cookieName, Value: value, Path: "/", Expires: exp, MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}, true
}

// signedOut is the cookie that ends a session in the browser.
func signedOut(secure bool) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
}

// session returns the payload of the request's valid, unexpired session.
func (s *sessions) session(r *http.Request) ([]byte, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil || len(s.token) == 0 {
		return nil, false
	}
	p, m, ok := strings.Cut(c.Value, ".")
	if !ok {
		return nil, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	mac, err2 := base64.RawURLEncoding.DecodeString(m)
	if err1 != nil || err2 != nil || len(payload) != 24 || !hmac.Equal(mac, s.mac("session", payload)) {
		return nil, false
	}
	if !s.now().Before(expiry(payload)) {
		return nil, false
	}
	return payload, true
}

// csrf is the CSRF token of a session.
func (s *sessions) csrf(payload []byte) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", payload))
}

// Authorize lets a signed-in operator's browser use the admin API: a
// valid session, and for a request that changes something the session's
// CSRF token and, when the browser sends one, an Origin of this host.
func (s *sessions) Authorize(r *http.Request) error {
	payload, ok := s.session(r)
	if !ok {
		return ErrNoSession
	}
	if safeMethod(r.Method) {
		return nil
	}
	if !sameOrigin(r) {
		return ErrOrigin
	}
	if !hmac.Equal([]byte(r.Header.Get(CSRFHeader)), []byte(s.csrf(payload))) {
		return ErrCSRF
	}
	return nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin reports whether the request's Origin (when it has one, as
// browsers send on every POST) is the host it was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// Sign-in attempts: a few per client address in a minute, and a bound
// on all of them together, so that guessing the admin token is slow even
// from many addresses.
const (
	signInWindow  = time.Minute
	signInPerAddr = 5
	signInTotal   = 50
)

func signInLimits(addr string) []signin.Limit {
	return []signin.Limit{{Key: "addr:" + addr, Max: signInPerAddr}, {Key: "all", Max: signInTotal}}
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// expiry is when the session of payload ends.
func expiry(payload []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(payload)), 0).UTC()
}
