package messengertest

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger"
)

// Handler serves the Graph API (with and without a version segment) and the
// control surface under /_platform/.
func (p *Platform) Handler() http.Handler {
	r := mux.NewRouter()
	c := r.PathPrefix("/_platform").Subrouter()
	c.HandleFunc("/pages", p.ctlPages).Methods(http.MethodGet)
	c.HandleFunc("/chat", serveChat).Methods(http.MethodGet)
	c.HandleFunc("/pages/{page}/users/{psid}/messages", p.ctlUserMessage).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/users/{psid}/postbacks", p.ctlUserPostback).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/users/{psid}/referrals", p.ctlUserReferral).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/users/{psid}/optins", p.ctlUserOptin).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/users/{psid}/reads", p.ctlUserRead).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/inbox/{psid}/messages", p.ctlInboxMessage).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/inbox/{psid}/take", p.ctlInboxTake).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/inbox/{psid}/done", p.ctlInboxDone).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/threads/{psid}", p.ctlThread).Methods(http.MethodGet)
	c.HandleFunc("/clock", p.ctlClock).Methods(http.MethodGet, http.MethodPost)
	c.HandleFunc("/calls", p.ctlCalls).Methods(http.MethodGet)
	c.HandleFunc("/webhooks", p.ctlWebhooks).Methods(http.MethodGet)
	c.HandleFunc("/settle", p.ctlSettle).Methods(http.MethodPost)
	c.HandleFunc("/apps/{app}/verify", p.ctlVerify).Methods(http.MethodPost)
	c.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctlError(w, http.StatusNotFound, fmt.Errorf("no control endpoint %s %s", r.Method, r.URL.Path))
	})
	c.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctlError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s is not allowed on %s", r.Method, r.URL.Path))
	})

	const version = `{version:v[0-9]+\.[0-9]+}`
	const node = `{node:me|[0-9]+}`
	for _, prefix := range []string{"/" + version, ""} {
		r.HandleFunc(prefix+"/"+node+"/{edge:[a-z_]+}", p.graph)
		r.HandleFunc(prefix+"/"+node, p.graph)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusBadRequest, messenger.ErrorEnvelope{Error: errUnknownPath(r.URL.Path)})
	})
	return r
}

// chatPage lets a person write as a Facebook user in a browser: it is a
// plain client of the control endpoints below.
//
//go:embed static/chat.html
var chatPage []byte

func serveChat(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(chatPage)
}

func ctlError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// decodeBody reads a control request body strictly, so that a typo in a
// key is an error rather than a silent default. An empty body is allowed.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

// respond answers a control action: errors map to statuses, and ?wait=true
// holds the answer until the webhooks the action caused were delivered.
func (p *Platform) respond(w http.ResponseWriter, r *http.Request, v any, err error) {
	var ge *messenger.Error
	switch {
	case errors.As(err, &ge):
		writeJSON(w, ge.HTTPStatus, messenger.ErrorEnvelope{Error: ge})
		return
	case errors.Is(err, ErrUnknownPage), errors.Is(err, ErrNoThread):
		ctlError(w, http.StatusNotFound, err)
		return
	case errors.Is(err, ErrNotInbox), errors.Is(err, ErrNoInbox):
		ctlError(w, http.StatusConflict, err)
		return
	case err != nil:
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	if wait := r.URL.Query().Get("wait"); wait == "true" || wait == "1" {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := p.Settle(ctx); err != nil {
			ctlError(w, http.StatusGatewayTimeout, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, v)
}

func ids(r *http.Request) (page, psid messenger.ID) {
	v := mux.Vars(r)
	return messenger.ID(v["page"]), messenger.ID(v["psid"])
}

func (p *Platform) ctlUserMessage(w http.ResponseWriter, r *http.Request) {
	var m UserMessage
	if err := decodeBody(r, &m); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	if m.Text == "" && len(m.Attachments) == 0 {
		ctlError(w, http.StatusBadRequest, errors.New("a message needs text or attachments"))
		return
	}
	page, psid := ids(r)
	mid, err := p.UserSends(page, psid, m)
	p.respond(w, r, map[string]string{"mid": mid}, err)
}

func (p *Platform) ctlUserPostback(w http.ResponseWriter, r *http.Request) {
	var b struct{ Title, Payload, Ref string }
	if err := decodeBody(r, &b); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	page, psid := ids(r)
	mid, err := p.UserPostback(page, psid, b.Title, b.Payload, b.Ref)
	p.respond(w, r, map[string]string{"mid": mid}, err)
}

func (p *Platform) ctlUserReferral(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Ref    string `json:"ref"`
		Source string `json:"source"`
		AdID   string `json:"ad_id"`
	}
	if err := decodeBody(r, &b); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	page, psid := ids(r)
	p.respond(w, r, map[string]bool{"ok": true}, p.UserReferral(page, psid, b.Ref, b.Source, b.AdID))
}

func (p *Platform) ctlUserOptin(w http.ResponseWriter, r *http.Request) {
	var b struct{ Payload string }
	if err := decodeBody(r, &b); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	page, psid := ids(r)
	tok, err := p.UserOptsIn(page, psid, b.Payload)
	p.respond(w, r, map[string]string{"one_time_notif_token": tok}, err)
}

func (p *Platform) ctlUserRead(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	p.respond(w, r, map[string]bool{"ok": true}, p.UserReads(page, psid))
}

func (p *Platform) ctlInboxMessage(w http.ResponseWriter, r *http.Request) {
	var b struct{ Text string }
	if err := decodeBody(r, &b); err != nil || b.Text == "" {
		ctlError(w, http.StatusBadRequest, errors.Join(errors.New(`body must be {"text": "..."}`), err))
		return
	}
	page, psid := ids(r)
	mid, err := p.InboxReplies(page, psid, b.Text)
	p.respond(w, r, map[string]string{"mid": mid}, err)
}

func (p *Platform) ctlInboxTake(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	p.respond(w, r, map[string]bool{"ok": true}, p.InboxTakes(page, psid))
}

func (p *Platform) ctlInboxDone(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	p.respond(w, r, map[string]bool{"ok": true}, p.InboxDone(page, psid))
}

func (p *Platform) ctlThread(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	st, ok := p.Thread(page, psid)
	if !ok {
		ctlError(w, http.StatusNotFound, fmt.Errorf("%w %s", ErrUnknownPage, page))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (p *Platform) ctlClock(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var b struct {
			Advance string `json:"advance"`
			Set     string `json:"set"`
		}
		if err := decodeBody(r, &b); err != nil {
			ctlError(w, http.StatusBadRequest, err)
			return
		}
		switch {
		case b.Advance != "":
			d, err := time.ParseDuration(b.Advance)
			if err != nil || d < 0 {
				ctlError(w, http.StatusBadRequest, fmt.Errorf("advance %q: want a positive Go duration such as \"25h\"", b.Advance))
				return
			}
			p.Advance(d)
		case b.Set != "":
			t, err := time.Parse(time.RFC3339, b.Set)
			if err != nil {
				ctlError(w, http.StatusBadRequest, fmt.Errorf("set: %w", err))
				return
			}
			p.clock.Set(t)
			p.expireAll()
		default:
			ctlError(w, http.StatusBadRequest, errors.New(`body must be {"advance": "25h"} or {"set": "<RFC 3339>"}`))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]time.Time{"now": p.now()})
}

func (p *Platform) ctlCalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []Call{}
	for _, c := range p.Calls() {
		if (q.Get("edge") == "" || q.Get("edge") == c.Edge) && (q.Get("app") == "" || q.Get("app") == c.App || q.Get("app") == string(c.AppID)) {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": out})
}

func (p *Platform) ctlWebhooks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []WebhookRecord{}
	for _, h := range p.Webhooks() {
		if (q.Get("app") == "" || q.Get("app") == h.App) && (q.Get("status") == "" || q.Get("status") == h.Status) {
			out = append(out, h)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out})
}

func (p *Platform) ctlSettle(w http.ResponseWriter, r *http.Request) {
	timeout := 30 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			ctlError(w, http.StatusBadRequest, fmt.Errorf("timeout: %w", err))
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if err := p.Settle(ctx); err != nil {
		ctlError(w, http.StatusGatewayTimeout, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"settled": true})
}

// PageInfo describes a page for people trying the platform.
type PageInfo struct {
	ID         messenger.ID `json:"id"`
	Name       string       `json:"name,omitempty"`
	Mode       Mode         `json:"mode"`
	DefaultApp string       `json:"default_app,omitempty"`
	Apps       []AppInfo    `json:"apps"`
}

// AppInfo is an app as connected to one page.
type AppInfo struct {
	Name             string       `json:"name"`
	ID               messenger.ID `json:"id"`
	CallbackURL      string       `json:"callback_url,omitempty"`
	Takeover         bool         `json:"takeover"`
	SubscribedFields []string     `json:"subscribed_fields"`
}

// Pages lists the pages and their connected apps.
func (p *Platform) Pages() []PageInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []PageInfo
	for _, pg := range p.pages {
		pi := PageInfo{ID: pg.id, Name: pg.name, Mode: pg.mode, DefaultApp: p.appName(pg.defaultApp)}
		for _, pa := range pg.connectedApps() {
			pi.Apps = append(pi.Apps, AppInfo{Name: pa.app.name, ID: pa.app.id, CallbackURL: pa.app.callback, Takeover: pa.takeover, SubscribedFields: pa.fieldList()})
		}
		out = append(out, pi)
	}
	return out
}

func (p *Platform) ctlPages(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"pages": p.Pages()})
}

// VerifyCallback performs Meta's subscription handshake with the app's
// callback: GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..,
// which must answer 200 with the challenge as its body.
func (p *Platform) VerifyCallback(ctx context.Context, appName string) error {
	p.mu.Lock()
	a := p.byName[appName]
	p.mu.Unlock()
	if a == nil || a.callback == "" {
		return fmt.Errorf("app %q has no callback_url", appName)
	}
	challenge := fmt.Sprint(time.Now().UnixNano() % 1e9)
	u, err := url.Parse(a.callback)
	if err != nil {
		return fmt.Errorf("callback_url: %w", err)
	}
	q := u.Query()
	q.Set("hub.mode", "subscribe")
	q.Set("hub.verify_token", a.verifyToken)
	q.Set("hub.challenge", challenge)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := p.hooks.client.Do(req)
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

func (p *Platform) ctlVerify(w http.ResponseWriter, r *http.Request) {
	if err := p.VerifyCallback(r.Context(), mux.Vars(r)["app"]); err != nil {
		ctlError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"verified": true})
}
