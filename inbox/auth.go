package inbox

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/batonhq/baton/web/signin"
)

// Agent is one person who answers in the inbox.
type Agent struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	// PasswordHash is a bcrypt hash; empty: only the proxy's header signs
	// the agent in.
	PasswordHash string `json:"-"`
	// Persona sends the agent's replies under a Messenger persona with
	// the display name and Picture.
	Persona bool   `json:"persona"`
	Picture string `json:"-"`
}

// ProxyAuth is what the inbox believes of the proxies in front of it,
// from these proxies only: the client's address (X-Forwarded-For) and
// scheme (X-Forwarded-Proto), and with Header set, a header naming the
// agent.
type ProxyAuth struct {
	Header  string
	Proxies []*net.IPNet
}

const (
	sessionCookie = "inbox_session"
	sessionTTL    = 12 * time.Hour
	csrfHeader    = "X-CSRF-Token"
	// Sign-in attempts: this many per window and client address (and
	// per agent name) before the inbox answers 429; a right password
	// takes its attempt back.
	maxFailures   = 10
	failureWindow = 15 * time.Minute
)

var bSessions = []byte("sessions") // id -> session

type session struct {
	Agent   string    `json:"agent"`
	Expires time.Time `json:"expires"`
}

// dummyHash is what a sign-in with an unknown name is compared against,
// at the dearest cost of the agents' hashes, so that a wrong name takes
// as long as a wrong password and the timing tells no names.
func dummyHash(agents map[string]*Agent) ([]byte, error) {
	cost := bcrypt.DefaultCost
	for _, a := range agents {
		if c, err := bcrypt.Cost([]byte(a.PasswordHash)); err == nil && c > cost {
			cost = c
		}
	}
	return bcrypt.GenerateFromPassword([]byte("no such agent"), cost)
}

// auth signs agents in and out and says who makes a request.
type auth struct {
	agents  map[string]*Agent
	dummy   []byte // dummyHash
	proxy   ProxyAuth
	key     []byte // CSRF tokens are HMACs of the session with it
	db      *db
	limiter *signin.Limiter
	now     func() time.Time
}

type agentCtxKey struct{}

func agentOf(r *http.Request) *Agent {
	a, _ := r.Context().Value(agentCtxKey{}).(*Agent)
	return a
}

// who finds the signed-in agent and the CSRF token that goes with the
// sign-in; nil when nobody is.
func (au *auth) who(r *http.Request) (*Agent, string) {
	if au.proxy.Header != "" && au.fromProxy(r) {
		if a := au.agents[strings.ToLower(strings.TrimSpace(r.Header.Get(au.proxy.Header)))]; a != nil {
			return a, au.csrf("header:" + a.Name)
		}
		return nil, ""
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) != 43 {
		return nil, ""
	}
	var s session
	_ = au.db.b.View(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bSessions).Get([]byte(c.Value)); raw != nil {
			_ = json.Unmarshal(raw, &s)
		}
		return nil
	})
	a := au.agents[s.Agent]
	if a == nil || !au.now().Before(s.Expires) {
		return nil, ""
	}
	return a, au.csrf("session:" + c.Value)
}

func (au *auth) csrf(of string) string {
	m := hmac.New(sha256.New, au.key)
	m.Write([]byte(of))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// fromProxy reports whether the request came straight from a trusted
// proxy.
func (au *auth) fromProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	return err == nil && au.trusted(host)
}

func (au *auth) trusted(addr string) bool {
	ip := net.ParseIP(strings.TrimSpace(addr))
	for _, n := range au.proxy.Proxies {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// client is the address a sign-in is counted against: the peer's, or
// behind trusted proxies the last address in X-Forwarded-For that is not
// one of them (what a client writes there itself comes before it, and is
// not believed).
func (au *auth) client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !au.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		if h := strings.TrimSpace(hops[i]); h != "" && !au.trusted(h) {
			return h
		}
	}
	return host
}

// require serves next to signed-in agents only; a request that changes
// anything must also carry the CSRF token, which only the inbox's own
// page can read (GET /api/me).
func (au *auth) require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, token := au.who(r)
		if a == nil {
			writeError(w, http.StatusUnauthorized, "sign in first")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if got := r.Header.Get(csrfHeader); subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				writeError(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), agentCtxKey{}, a)))
	})
}

// login checks a name and password and starts a session.
func (au *auth) login(w http.ResponseWriter, r *http.Request) {
	if !jsonRequest(r) {
		// A cross-site form cannot send JSON without the browser asking
		// first: this keeps other sites from signing an agent in.
		writeError(w, http.StatusUnsupportedMediaType, "send JSON")
		return
	}
	var b struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := decode(r, &b); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	name := strings.ToLower(strings.TrimSpace(b.Name))
	// Counted before bcrypt looks at it, so a burst cannot pass the
	// limit while the first guesses are being checked (web/signin).
	attempt, ok := au.limiter.Begin(signin.Limit{Key: "ip:" + au.client(r), Max: maxFailures}, signin.Limit{Key: "agent:" + name, Max: maxFailures})
	if !ok {
		writeError(w, http.StatusTooManyRequests, "too many failed sign-ins: wait a few minutes")
		return
	}
	a := au.agents[name]
	hash := au.dummy
	if a != nil && a.PasswordHash != "" {
		hash = []byte(a.PasswordHash)
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(b.Password)); err != nil || a == nil || a.PasswordHash == "" {
		writeError(w, http.StatusUnauthorized, "wrong name or password")
		return
	}
	attempt.Succeeded()
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	sid := base64.RawURLEncoding.EncodeToString(id)
	raw, _ := json.Marshal(session{Agent: a.Name, Expires: au.now().Add(sessionTTL)})
	if err := au.db.b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bSessions).Put([]byte(sid), raw) }); err != nil {
		writeError(w, http.StatusInternalServerError, "cannot save the session")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/", HttpOnly: true, Secure: au.secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL / time.Second)})
	writeJSON(w, http.StatusOK, map[string]string{"agent": a.Name})
}

// logout ends the session (behind require: CSRF-checked).
func (au *auth) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		_ = au.db.b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bSessions).Delete([]byte(c.Value)) })
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: au.secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
}

// secure: the cookie is Secure when the agent's browser reached the
// inbox over TLS, directly or through a trusted proxy.
func (au *auth) secure(r *http.Request) bool {
	return r.TLS != nil || (au.fromProxy(r) && r.Header.Get("X-Forwarded-Proto") == "https")
}

// forgetSessions drops expired sessions.
func (au *auth) forgetSessions() error {
	now := au.now()
	return au.db.b.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bSessions)
		var old [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			var s session
			if json.Unmarshal(v, &s) != nil || !now.Before(s.Expires) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func jsonRequest(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return ct == "application/json" || strings.HasPrefix(ct, "application/json;")
}
