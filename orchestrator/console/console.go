// Package console is the operator console: a web page on the admin
// listener (never the public one) that shows who owns what, what was
// said and what is stuck, and acts through the admin API. An operator
// signs in with the admin token and gets a session cookie (HttpOnly,
// SameSite=Strict, Secure over TLS, signed, expiring); the admin API
// accepts that session, with the session's CSRF token on every request
// that changes something, as well as the bearer token. The page is
// embedded static HTML, CSS and JavaScript (no build step, nothing from
// elsewhere, a Content-Security-Policy that allows only this origin),
// and updates live from server-sent events.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/web/live"
	"github.com/batonhq/baton/web/signin"
)

//go:embed static
var staticFiles embed.FS

// Health is what the console reads of the bots' delivery health
// (dispatch.Health).
type Health interface {
	FailingSince(app string) (time.Time, bool)
}

// Deps are what the console needs.
type Deps struct {
	Store    store.Store
	Topology *topology.Topology
	Health   Health
	Clock    clock.Clock
	Log      *zap.Logger
	// AdminToken signs operators in; empty: nobody can.
	AdminToken string
}

// Console serves /console/.
type Console struct {
	d        Deps
	sessions *sessions
	limiter  *signin.Limiter
	hub      *live.Hub
	static   http.Handler
	login    *template.Template
	mux      *http.ServeMux
}

// New builds the console.
func New(d Deps) *Console {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	sub, _ := fs.Sub(staticFiles, "static")
	c := &Console{d: d, sessions: newSessions(d.AdminToken, d.Clock.Now), limiter: signin.New(signInWindow, d.Clock.Now), hub: live.NewHub("change", maxStreams),
		static: http.StripPrefix("/console/static/", http.FileServerFS(sub)),
		login:  template.Must(template.ParseFS(staticFiles, "static/login.html"))}
	m := http.NewServeMux()
	m.HandleFunc("GET /console/{$}", c.index)
	m.HandleFunc("GET /console/login", c.loginPage)
	m.HandleFunc("POST /console/login", c.signIn)
	m.HandleFunc("POST /console/logout", c.signOut)
	m.HandleFunc("GET /console/static/{file}", c.asset)
	m.HandleFunc("GET /console/api/session", c.api(c.session))
	m.HandleFunc("GET /console/api/overview", c.api(c.getOverview))
	m.HandleFunc("GET /console/api/events", c.authed(c.hub.ServeHTTP))
	m.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	c.mux = m
	return c
}

// maxStreams bounds the open event streams (each holds a connection and
// a goroutine): "change" whenever something the console shows may have
// changed.
const maxStreams = 64

// contentSecurityPolicy allows the page this origin's script, style and
// requests only: no inline script, nothing from elsewhere, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves everything under /console/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer a browser sends
	// "Origin: null" on its own POSTs, which the origin check refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	c.mux.ServeHTTP(w, r)
}

// Authorize lets a signed-in browser use the admin API (api.Sessions):
// signedIn says whether the request has a valid session; err, when it
// has, why this request is refused all the same (CSRF, origin).
func (c *Console) Authorize(r *http.Request) (signedIn bool, err error) {
	err = c.sessions.Authorize(r)
	return err != ErrNoSession, err
}

// Poke tells the open consoles that something changed.
func (c *Console) Poke() { c.hub.Poke() }

// Close ends the open event streams, so that the admin listener's
// shutdown does not wait for them.
func (c *Console) Close() { c.hub.Close() }

// Run closes the event streams when ctx ends.
func (c *Console) Run(ctx context.Context) error {
	<-ctx.Done()
	c.hub.Close()
	return nil
}

func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.sessions.session(r); !ok {
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.ServeFileFS(w, r, staticFiles, "static/index.html")
}

func (c *Console) asset(w http.ResponseWriter, r *http.Request) {
	switch r.PathValue("file") {
	case "console.js", "console.css":
		c.static.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

type loginData struct{ Error string }

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, http.StatusOK, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := c.login.Execute(w, loginData{Error: msg}); err != nil {
		c.d.Log.Warn("login page not written", zap.Error(err))
	}
}

// signIn checks the admin token from the sign-in form, at most a few
// wrong ones a minute per address. The attempt counts from before the
// form is read (web/signin), so a burst cannot pass the limit at once.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	addr := clientAddr(r)
	if !sameOrigin(r) {
		c.renderLogin(w, http.StatusForbidden, "Sign in from the console's own page.")
		return
	}
	attempt, ok := c.limiter.Begin(signInLimits(addr)...)
	if !ok {
		c.d.Log.Warn("console sign-in refused: too many wrong tokens", zap.String("addr", addr))
		c.renderLogin(w, http.StatusTooManyRequests, "Too many attempts: wait a minute.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	cookie, ok := c.sessions.signIn(token, r.TLS != nil)
	if !ok {
		c.d.Log.Info("console sign-in with a wrong token", zap.String("addr", addr))
		c.renderLogin(w, http.StatusUnauthorized, "That is not the admin token.")
		return
	}
	attempt.Succeeded()
	http.SetCookie(w, cookie)
	c.d.Log.Info("console sign-in", zap.String("addr", addr))
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if err := c.sessions.Authorize(r); err != nil && err != ErrNoSession {
		writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]string{"code": "forbidden", "message": err.Error()}})
		return
	}
	http.SetCookie(w, signedOut(r.TLS != nil))
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed out"})
}

// authed refuses a request without a session, as the admin API does.
func (c *Console) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := c.sessions.Authorize(r); err != nil {
			status := http.StatusForbidden
			if err == ErrNoSession {
				status = http.StatusUnauthorized
			}
			writeJSON(w, status, map[string]any{"error": map[string]string{"code": "unauthorized", "message": err.Error()}})
			return
		}
		next(w, r)
	}
}

type badRequest string

func (e badRequest) Error() string { return string(e) }

func errBadRequest(msg string) error { return badRequest(msg) }

// api serves a JSON endpoint of the console behind the session.
func (c *Console) api(fn func(r *http.Request) (any, error)) http.HandlerFunc {
	return c.authed(func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		switch e := err.(type) {
		case nil:
			w.Header().Set("Cache-Control", "no-store")
			writeJSON(w, http.StatusOK, v)
		case badRequest:
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid", "message": string(e)}})
		default:
			c.d.Log.Error("console request failed", zap.String("path", r.URL.Path), zap.Error(err))
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": map[string]string{"code": "internal", "message": "internal error"}})
		}
	})
}

// SessionView is what the page learns when it starts: the CSRF token it
// sends back on every change, and the pages and apps for its menus.
type SessionView struct {
	CSRF      string     `json:"csrf"`
	ExpiresAt time.Time  `json:"expires_at"`
	Pages     []PageView `json:"pages"`
}

// PageView is a page and its apps, for the console's menus.
type PageView struct {
	ID       string    `json:"id"`
	Platform string    `json:"platform"`
	Mode     string    `json:"mode"`
	Apps     []AppView `json:"apps"`
}

// AppView is an app on a page.
type AppView struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Hosted  bool   `json:"hosted"`
	Primary bool   `json:"primary"`
	CanAct  bool   `json:"can_act"` // Baton holds its page token
}

func (c *Console) session(r *http.Request) (any, error) {
	payload, _ := c.sessions.session(r)
	v := SessionView{CSRF: c.sessions.csrf(payload), Pages: []PageView{}}
	if len(payload) >= 8 {
		v.ExpiresAt = expiry(payload)
	}
	for _, p := range c.d.Topology.Pages() {
		pv := PageView{ID: p.ID, Platform: "messenger", Mode: string(p.SM.Mode), Apps: []AppView{}}
		if p.Instagram {
			pv.Platform = "instagram"
		}
		for _, a := range p.Apps {
			pv.Apps = append(pv.Apps, AppView{Name: a.Name, ID: a.ID, Hosted: a.Hosted, Primary: a.Name == p.Primary, CanAct: p.CanAct(a)})
		}
		v.Pages = append(v.Pages, pv)
	}
	return v, nil
}

func (c *Console) getOverview(r *http.Request) (any, error) { return c.overview(r) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
