package messengertest

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger"
)

// controlSurface serves /_platform/: a person's and the Page Inbox's
// actions, the truth about threads, the clock, the records of calls and
// webhooks, and the faults. It is how people and tests outside Go drive
// the platform; each endpoint is a thin client of one part.
type controlSurface struct {
	w      *world
	person *person
	inbox  *inbox
	calls  *callLog
	hooks  *webhookSender
	faults *faultInjector
}

// register adds the control endpoints to c, the /_platform subrouter.
func (s *controlSurface) register(c *mux.Router) {
	c.HandleFunc("/pages", s.pages).Methods(http.MethodGet)
	c.HandleFunc("/chat", serveChat).Methods(http.MethodGet)
	c.HandleFunc("/pages/{page}/users/{psid}/messages", s.userMessage).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/users/{psid}/postbacks", s.userPostback).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/users/{psid}/referrals", s.userReferral).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/users/{psid}/optins", s.userOptin).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/users/{psid}/reads", s.userRead).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/inbox/{psid}/messages", s.inboxMessage).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/inbox/{psid}/take", s.inboxTake).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/inbox/{psid}/done", s.inboxDone).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/inbox/{psid}/ai_reply", s.inboxAIReply).Methods(http.MethodPost)
	c.HandleFunc("/pages/{page}/threads/{psid}", s.thread).Methods(http.MethodGet)
	c.HandleFunc("/clock", s.clock).Methods(http.MethodGet, http.MethodPost)
	c.HandleFunc("/calls", s.listCalls).Methods(http.MethodGet)
	c.HandleFunc("/webhooks", s.listWebhooks).Methods(http.MethodGet)
	c.HandleFunc("/webhooks/{action:hold|release}", s.holdWebhooks).Methods(http.MethodPost)
	c.HandleFunc("/settle", s.settle).Methods(http.MethodPost)
	c.HandleFunc("/apps/{app}/verify", s.verify).Methods(http.MethodPost)
	c.HandleFunc("/faults", s.listFaults).Methods(http.MethodGet)
	c.HandleFunc("/faults", s.addFault).Methods(http.MethodPost)
	c.HandleFunc("/faults", s.clearFaults).Methods(http.MethodDelete)
	c.HandleFunc("/faults/{id}", s.clearFault).Methods(http.MethodDelete)
	c.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctlError(w, http.StatusNotFound, fmt.Errorf("no control endpoint %s %s", r.Method, r.URL.Path))
	})
	c.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctlError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s is not allowed on %s", r.Method, r.URL.Path))
	})
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
func (s *controlSurface) respond(w http.ResponseWriter, r *http.Request, v any, err error) {
	var ge *messenger.Error
	switch {
	case errors.As(err, &ge):
		writeJSON(w, ge.HTTPStatus, messenger.ErrorEnvelope{Error: ge})
		return
	case errors.Is(err, ErrUnknownPage), errors.Is(err, ErrNoThread), errors.Is(err, ErrUnknownApp):
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
		if err := s.hooks.settle(ctx); err != nil {
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

func (s *controlSurface) userMessage(w http.ResponseWriter, r *http.Request) {
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
	mid, err := s.person.sends(page, psid, m)
	s.respond(w, r, map[string]string{"mid": mid}, err)
}

func (s *controlSurface) userPostback(w http.ResponseWriter, r *http.Request) {
	var b struct{ Title, Payload, Ref string }
	if err := decodeBody(r, &b); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	page, psid := ids(r)
	mid, err := s.person.postback(page, psid, b.Title, b.Payload, b.Ref)
	s.respond(w, r, map[string]string{"mid": mid}, err)
}

func (s *controlSurface) userReferral(w http.ResponseWriter, r *http.Request) {
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
	s.respond(w, r, map[string]bool{"ok": true}, s.person.referral(page, psid, b.Ref, b.Source, b.AdID))
}

func (s *controlSurface) userOptin(w http.ResponseWriter, r *http.Request) {
	var b struct{ Payload string }
	if err := decodeBody(r, &b); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	page, psid := ids(r)
	tok, err := s.person.optsIn(page, psid, b.Payload)
	s.respond(w, r, map[string]string{"one_time_notif_token": tok}, err)
}

func (s *controlSurface) userRead(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	s.respond(w, r, map[string]bool{"ok": true}, s.person.reads(page, psid))
}

func (s *controlSurface) inboxMessage(w http.ResponseWriter, r *http.Request) {
	s.inboxText(w, r, s.inbox.replies)
}

// inboxAIReply is Meta AI replying from the inbox.
func (s *controlSurface) inboxAIReply(w http.ResponseWriter, r *http.Request) {
	s.inboxText(w, r, s.inbox.aiReplies)
}

func (s *controlSurface) inboxText(w http.ResponseWriter, r *http.Request, reply func(page, psid messenger.ID, text string) (string, error)) {
	var b struct{ Text string }
	if err := decodeBody(r, &b); err != nil || b.Text == "" {
		ctlError(w, http.StatusBadRequest, errors.Join(errors.New(`body must be {"text": "..."}`), err))
		return
	}
	page, psid := ids(r)
	mid, err := reply(page, psid, b.Text)
	s.respond(w, r, map[string]string{"mid": mid}, err)
}

func (s *controlSurface) inboxTake(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	s.respond(w, r, map[string]bool{"ok": true}, s.inbox.takes(page, psid))
}

func (s *controlSurface) inboxDone(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	s.respond(w, r, map[string]bool{"ok": true}, s.inbox.done(page, psid))
}

func (s *controlSurface) thread(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	st, ok := s.w.threadState(page, psid)
	if !ok {
		ctlError(w, http.StatusNotFound, fmt.Errorf("%w %s", ErrUnknownPage, page))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *controlSurface) clock(w http.ResponseWriter, r *http.Request) {
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
			s.w.advance(d)
		case b.Set != "":
			t, err := time.Parse(time.RFC3339, b.Set)
			if err != nil {
				ctlError(w, http.StatusBadRequest, fmt.Errorf("set: %w", err))
				return
			}
			s.w.setTime(t)
		default:
			ctlError(w, http.StatusBadRequest, errors.New(`body must be {"advance": "25h"} or {"set": "<RFC 3339>"}`))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]time.Time{"now": s.w.now()})
}

func (s *controlSurface) listCalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []Call{}
	for _, c := range s.calls.list() {
		if (q.Get("edge") == "" || q.Get("edge") == c.Edge) && (q.Get("app") == "" || q.Get("app") == c.App || q.Get("app") == string(c.AppID)) {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": out})
}

func (s *controlSurface) listWebhooks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []WebhookRecord{}
	for _, h := range s.hooks.list() {
		if (q.Get("app") == "" || q.Get("app") == h.App) && (q.Get("status") == "" || q.Get("status") == h.Status) {
			out = append(out, h)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out})
}

// holdWebhooks holds or releases an app's webhooks, {"app": name or id};
// without an app, every app's.
func (s *controlSurface) holdWebhooks(w http.ResponseWriter, r *http.Request) {
	var b struct {
		App string `json:"app"`
	}
	if err := decodeBody(r, &b); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	act := s.hooks.hold
	if mux.Vars(r)["action"] == "release" {
		act = s.hooks.release
	}
	s.respond(w, r, map[string]bool{"ok": true}, s.holdOrRelease(b.App, act))
}

// holdOrRelease is Platform.HoldWebhooks and ReleaseWebhooks.
func (s *controlSurface) holdOrRelease(app string, act func(messenger.ID)) error {
	var id messenger.ID
	if app != "" {
		var ok bool
		if id, ok = s.w.appID(app); !ok {
			return fmt.Errorf("%w %q", ErrUnknownApp, app)
		}
	}
	act(id)
	return nil
}

func (s *controlSurface) settle(w http.ResponseWriter, r *http.Request) {
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
	if err := s.hooks.settle(ctx); err != nil {
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
	Platform   string       `json:"platform"`
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

func (s *controlSurface) pages(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"pages": s.w.pageInfos()})
}

// verifyCallback is Platform.VerifyCallback.
func (s *controlSurface) verifyCallback(ctx context.Context, appName string) error {
	callback, verifyToken, ok := s.w.callbackOf(appName)
	if !ok {
		return fmt.Errorf("app %q has no callback_url", appName)
	}
	return s.hooks.verify(ctx, appName, callback, verifyToken)
}

func (s *controlSurface) verify(w http.ResponseWriter, r *http.Request) {
	if err := s.verifyCallback(r.Context(), mux.Vars(r)["app"]); err != nil {
		ctlError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"verified": true})
}
