// Package control is the fake platform's control surface, /_platform/: a
// person's and the Page Inbox's actions, the truth about threads, the
// clock and the records of calls and webhooks. It is how people and tests
// outside Go drive the platform; each endpoint is a thin client of one of
// the platform's methods. The fault endpoints are package faults'.
package control

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
	"github.com/batonhq/baton/messenger/messengertest/calllog"
	"github.com/batonhq/baton/messenger/messengertest/hooks"
)

// Errors of the control surface.
var (
	ErrUnknownPage = errors.New("unknown page")
	ErrNoThread    = errors.New("the person has not written to this page")
	ErrNotInbox    = errors.New("the Page Inbox does not own this thread")
	ErrNoInbox     = errors.New("the Page Inbox is not connected to this page")
	ErrUnknownApp  = errors.New("unknown app")
)

// UserMessage is what a person writes.
type UserMessage struct {
	Text        string                 `json:"text"`
	QuickReply  string                 `json:"quick_reply"` // payload of the tapped quick reply
	Ref         string                 `json:"ref"`         // m.me ref the person arrived with
	Attachments []messenger.Attachment `json:"attachments"`
}

// Platform is what the control surface drives: the fake platform's own
// methods, with T its thread state and P its page description.
type Platform[T, P any] interface {
	UserSends(pageID, psid messenger.ID, m UserMessage) (string, error)
	UserPostback(pageID, psid messenger.ID, title, payload, ref string) (string, error)
	UserReferral(pageID, psid messenger.ID, ref, source, adID string) error
	UserOptsIn(pageID, psid messenger.ID, payload string) (string, error)
	UserReads(pageID, psid messenger.ID) error
	InboxReplies(pageID, psid messenger.ID, text string) (string, error)
	InboxAIReplies(pageID, psid messenger.ID, text string) (string, error)
	InboxTakes(pageID, psid messenger.ID) error
	InboxDone(pageID, psid messenger.ID) error
	Thread(pageID, psid messenger.ID) (T, bool)
	Pages() []P
	Advance(d time.Duration) time.Time
	Calls() []calllog.Call
	Webhooks() []hooks.Record
	HoldWebhooks(app string) error
	ReleaseWebhooks(app string) error
	Settle(ctx context.Context) error
	VerifyCallback(ctx context.Context, appName string) error
}

// Clock is the platform's time as the control surface reads and sets it;
// Set applies the expiries that fall due.
type Clock interface {
	Now() time.Time
	Set(t time.Time)
}

type surface[T, P any] struct {
	p   Platform[T, P]
	clk Clock
}

// Register adds the control endpoints over p to c, the /_platform
// subrouter.
func Register[T, P any](c *mux.Router, p Platform[T, P], clock Clock) {
	s := &surface[T, P]{p: p, clk: clock}
	s.register(c)
}

func (s *surface[T, P]) register(c *mux.Router) {
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
	c.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Error(w, http.StatusNotFound, fmt.Errorf("no control endpoint %s %s", r.Method, r.URL.Path))
	})
	c.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Error(w, http.StatusMethodNotAllowed, fmt.Errorf("%s is not allowed on %s", r.Method, r.URL.Path))
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

// Error answers a control request with status and {"error": err}.
func Error(w http.ResponseWriter, status int, err error) {
	WriteJSON(w, status, map[string]string{"error": err.Error()})
}

// DecodeBody reads a control request body strictly, so that a typo in a
// key is an error rather than a silent default. An empty body is allowed.
func DecodeBody(r *http.Request, v any) error {
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
func (s *surface[T, P]) respond(w http.ResponseWriter, r *http.Request, v any, err error) {
	var ge *messenger.Error
	switch {
	case errors.As(err, &ge):
		WriteJSON(w, ge.HTTPStatus, messenger.ErrorEnvelope{Error: ge})
		return
	case errors.Is(err, ErrUnknownPage), errors.Is(err, ErrNoThread), errors.Is(err, ErrUnknownApp):
		Error(w, http.StatusNotFound, err)
		return
	case errors.Is(err, ErrNotInbox), errors.Is(err, ErrNoInbox):
		Error(w, http.StatusConflict, err)
		return
	case err != nil:
		Error(w, http.StatusBadRequest, err)
		return
	}
	if wait := r.URL.Query().Get("wait"); wait == "true" || wait == "1" {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := s.p.Settle(ctx); err != nil {
			Error(w, http.StatusGatewayTimeout, err)
			return
		}
	}
	WriteJSON(w, http.StatusOK, v)
}

func ids(r *http.Request) (page, psid messenger.ID) {
	v := mux.Vars(r)
	return messenger.ID(v["page"]), messenger.ID(v["psid"])
}

func (s *surface[T, P]) userMessage(w http.ResponseWriter, r *http.Request) {
	var m UserMessage
	if err := DecodeBody(r, &m); err != nil {
		Error(w, http.StatusBadRequest, err)
		return
	}
	if m.Text == "" && len(m.Attachments) == 0 {
		Error(w, http.StatusBadRequest, errors.New("a message needs text or attachments"))
		return
	}
	page, psid := ids(r)
	mid, err := s.p.UserSends(page, psid, m)
	s.respond(w, r, map[string]string{"mid": mid}, err)
}

func (s *surface[T, P]) userPostback(w http.ResponseWriter, r *http.Request) {
	var b struct{ Title, Payload, Ref string }
	if err := DecodeBody(r, &b); err != nil {
		Error(w, http.StatusBadRequest, err)
		return
	}
	page, psid := ids(r)
	mid, err := s.p.UserPostback(page, psid, b.Title, b.Payload, b.Ref)
	s.respond(w, r, map[string]string{"mid": mid}, err)
}

func (s *surface[T, P]) userReferral(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Ref    string `json:"ref"`
		Source string `json:"source"`
		AdID   string `json:"ad_id"`
	}
	if err := DecodeBody(r, &b); err != nil {
		Error(w, http.StatusBadRequest, err)
		return
	}
	page, psid := ids(r)
	s.respond(w, r, map[string]bool{"ok": true}, s.p.UserReferral(page, psid, b.Ref, b.Source, b.AdID))
}

func (s *surface[T, P]) userOptin(w http.ResponseWriter, r *http.Request) {
	var b struct{ Payload string }
	if err := DecodeBody(r, &b); err != nil {
		Error(w, http.StatusBadRequest, err)
		return
	}
	page, psid := ids(r)
	tok, err := s.p.UserOptsIn(page, psid, b.Payload)
	s.respond(w, r, map[string]string{"one_time_notif_token": tok}, err)
}

func (s *surface[T, P]) userRead(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	s.respond(w, r, map[string]bool{"ok": true}, s.p.UserReads(page, psid))
}

func (s *surface[T, P]) inboxMessage(w http.ResponseWriter, r *http.Request) {
	s.inboxText(w, r, s.p.InboxReplies)
}

// inboxAIReply is Meta AI replying from the inbox.
func (s *surface[T, P]) inboxAIReply(w http.ResponseWriter, r *http.Request) {
	s.inboxText(w, r, s.p.InboxAIReplies)
}

func (s *surface[T, P]) inboxText(w http.ResponseWriter, r *http.Request, reply func(page, psid messenger.ID, text string) (string, error)) {
	var b struct{ Text string }
	if err := DecodeBody(r, &b); err != nil || b.Text == "" {
		Error(w, http.StatusBadRequest, errors.Join(errors.New(`body must be {"text": "..."}`), err))
		return
	}
	page, psid := ids(r)
	mid, err := reply(page, psid, b.Text)
	s.respond(w, r, map[string]string{"mid": mid}, err)
}

func (s *surface[T, P]) inboxTake(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	s.respond(w, r, map[string]bool{"ok": true}, s.p.InboxTakes(page, psid))
}

func (s *surface[T, P]) inboxDone(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	s.respond(w, r, map[string]bool{"ok": true}, s.p.InboxDone(page, psid))
}

func (s *surface[T, P]) thread(w http.ResponseWriter, r *http.Request) {
	page, psid := ids(r)
	st, ok := s.p.Thread(page, psid)
	if !ok {
		Error(w, http.StatusNotFound, fmt.Errorf("%w %s", ErrUnknownPage, page))
		return
	}
	WriteJSON(w, http.StatusOK, st)
}

func (s *surface[T, P]) clock(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var b struct {
			Advance string `json:"advance"`
			Set     string `json:"set"`
		}
		if err := DecodeBody(r, &b); err != nil {
			Error(w, http.StatusBadRequest, err)
			return
		}
		switch {
		case b.Advance != "":
			d, err := time.ParseDuration(b.Advance)
			if err != nil || d < 0 {
				Error(w, http.StatusBadRequest, fmt.Errorf("advance %q: want a positive Go duration such as \"25h\"", b.Advance))
				return
			}
			s.p.Advance(d)
		case b.Set != "":
			t, err := time.Parse(time.RFC3339, b.Set)
			if err != nil {
				Error(w, http.StatusBadRequest, fmt.Errorf("set: %w", err))
				return
			}
			s.clk.Set(t)
		default:
			Error(w, http.StatusBadRequest, errors.New(`body must be {"advance": "25h"} or {"set": "<RFC 3339>"}`))
			return
		}
	}
	WriteJSON(w, http.StatusOK, map[string]time.Time{"now": s.clk.Now()})
}

func (s *surface[T, P]) listCalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []calllog.Call{}
	for _, c := range s.p.Calls() {
		if (q.Get("edge") == "" || q.Get("edge") == c.Edge) && (q.Get("app") == "" || q.Get("app") == c.App || q.Get("app") == string(c.AppID)) {
			out = append(out, c)
		}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"calls": out})
}

func (s *surface[T, P]) listWebhooks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []hooks.Record{}
	for _, h := range s.p.Webhooks() {
		if (q.Get("app") == "" || q.Get("app") == h.App) && (q.Get("status") == "" || q.Get("status") == h.Status) {
			out = append(out, h)
		}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"webhooks": out})
}

// holdWebhooks holds or releases an app's webhooks, {"app": name or id};
// without an app, every app's.
func (s *surface[T, P]) holdWebhooks(w http.ResponseWriter, r *http.Request) {
	var b struct {
		App string `json:"app"`
	}
	if err := DecodeBody(r, &b); err != nil {
		Error(w, http.StatusBadRequest, err)
		return
	}
	act := s.p.HoldWebhooks
	if mux.Vars(r)["action"] == "release" {
		act = s.p.ReleaseWebhooks
	}
	s.respond(w, r, map[string]bool{"ok": true}, act(b.App))
}

func (s *surface[T, P]) settle(w http.ResponseWriter, r *http.Request) {
	timeout := 30 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			Error(w, http.StatusBadRequest, fmt.Errorf("timeout: %w", err))
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if err := s.p.Settle(ctx); err != nil {
		Error(w, http.StatusGatewayTimeout, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]bool{"settled": true})
}

func (s *surface[T, P]) pages(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]any{"pages": s.p.Pages()})
}

func (s *surface[T, P]) verify(w http.ResponseWriter, r *http.Request) {
	if err := s.p.VerifyCallback(r.Context(), mux.Vars(r)["app"]); err != nil {
		Error(w, http.StatusBadGateway, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]bool{"verified": true})
}

// WriteJSON answers with status and v in JSON, HTML left unescaped.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
