package deletion

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/store"
)

// Paths on the public listener. The callback URL given to Meta for a
// hosted app is <public_url>/datadeletion/<app name>.
const (
	callbackPath = "/datadeletion/{app}"
	statusPath   = "/datadeletion/status/{code:[A-Z2-7]{1,64}}"
)

// maxForm bounds the callback's body: a form with one signed request.
const maxForm = 16 << 10

// Register adds the callback and the status page to the public router.
func (s *Service) Register(r *mux.Router) {
	r.HandleFunc(statusPath, s.status).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(callbackPath, s.callback).Methods(http.MethodPost)
}

// callback is Meta's data deletion request for one hosted app: verify the
// signed request with the app's secret, record the request durably, start
// the erase, and answer with the status URL and the confirmation code.
func (s *Service) callback(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["app"]
	a := s.d.Topology.App(name)
	if a == nil || !a.Hosted || len(a.Secret) == 0 {
		s.refuse(w, r, name, apierr.Errorf(apierr.NotFound, "no hosted app %q: the callback URL is /datadeletion/<app name in the config>", name), "unknown_app")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.refuse(w, r, name, apierr.Errorf(apierr.Invalid, "the body is not a form of at most %d bytes: %v", maxForm, err), "deletion_form")
		return
	}
	raw := r.PostForm.Get("signed_request")
	if raw == "" {
		s.refuse(w, r, name, apierr.Errorf(apierr.Invalid, "form field signed_request is missing"), "deletion_form")
		return
	}
	now := s.d.Clock.Now()
	sr, err := Parse(raw, a.Secret, now, s.d.MaxAge)
	if err != nil {
		code := apierr.Invalid
		if errors.Is(err, ErrSignature) || errors.Is(err, ErrExpired) {
			code = apierr.Unauthorized
		}
		s.refuse(w, r, name, apierr.Errorf(code, "%v", err), "deletion_signed_request")
		return
	}
	d := store.Deletion{Code: newCode(), App: a.Name, UserID: sr.UserID, Status: store.DeletionPending, RequestedAt: now}
	// Durable before Meta is told: the status URL must answer, and the
	// erase resume, whatever happens next.
	if err := s.d.Store.Update(context.WithoutCancel(r.Context()), func(tx store.Tx) error { return tx.PutDeletion(d) }); err != nil {
		s.d.Log.Error("deletion request not recorded", zap.String("app", a.Name), zap.Error(err))
		writeError(w, apierr.Errorf(apierr.Internal, "internal error; see the server log"))
		return
	}
	s.wake()
	s.d.Log.Info("deletion request received", zap.String("app", a.Name), zap.String("code", d.Code))
	api.WriteJSON(w, http.StatusOK, map[string]string{"url": s.statusURL(r, d.Code), "confirmation_code": d.Code})
}

// refuse answers a callback Baton will not act on, and keeps it among the
// recent refusals (anyone can send them: their own ring).
func (s *Service) refuse(w http.ResponseWriter, _ *http.Request, app string, err *apierr.Error, why string) {
	if len(app) > 64 { // a stranger's path: bounded before it is kept
		app = app[:64]
	}
	if s.d.Errors != nil {
		s.d.Errors.Record(recent.Error{Kind: "deletion", App: app, Message: err.Message, Refusal: why})
	}
	writeError(w, err)
}

// statusURL is where the person follows their request: on public_url, or
// else on the Host the callback came to (Meta calls the URL it was given,
// so that Host is the public one, unless a proxy rewrites it).
func (s *Service) statusURL(r *http.Request, code string) string {
	base := s.d.PublicURL
	if base == "" {
		s.hostOnce.Do(func() {
			s.d.Log.Warn("public_url is not set: data deletion status URLs are built from the request's Host; set public_url to be sure of them")
		})
		scheme := "http"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return strings.TrimSuffix(base, "/") + "/datadeletion/status/" + code
}

// StatusView is what the status URL answers, in JSON when asked for it
// (Accept: application/json); a person gets the same as a page.
type StatusView struct {
	ConfirmationCode string       `json:"confirmation_code"`
	Status           string       `json:"status"` // pending | done
	RequestedAt      time.Time    `json:"requested_at"`
	DoneAt           *time.Time   `json:"done_at,omitempty"`
	Erased           store.Erased `json:"erased"`
	Matched          string       `json:"matched,omitempty"`
}

func (s *Service) status(w http.ResponseWriter, r *http.Request) {
	code := mux.Vars(r)["code"]
	var d store.Deletion
	err := s.d.Store.View(func(tx store.ReadTx) error {
		var err error
		d, err = tx.Deletion(code)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, apierr.Errorf(apierr.NotFound, "no data deletion request with confirmation code %s", code))
		return
	}
	if err != nil {
		s.d.Log.Error("deletion request not read", zap.Error(err))
		writeError(w, apierr.Errorf(apierr.Internal, "internal error; see the server log"))
		return
	}
	v := StatusView{ConfirmationCode: d.Code, Status: d.Status, RequestedAt: d.RequestedAt, Erased: d.Erased, Matched: d.Matched}
	if !d.DoneAt.IsZero() {
		v.DoneAt = &d.DoneAt
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		api.WriteJSON(w, http.StatusOK, v)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = statusPage.Execute(w, v)
}

// statusPage is the human-readable status Meta requires the URL to show.
var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Data deletion request {{.ConfirmationCode}}</title></head>
<body>
<h1>Data deletion request {{.ConfirmationCode}}</h1>
{{if eq .Status "done"}}<p>Done: the conversation data this service kept about you was deleted on {{.DoneAt.UTC.Format "2 January 2006 at 15:04 UTC"}}
({{.Erased.Threads}} conversation record(s), {{.Erased.Journal}} received message(s) and event(s), {{.Erased.History}} routing record(s),
{{.Erased.Pending}} undelivered and {{.Erased.Dead}} failed deliveries).</p>
{{else}}<p>Received on {{.RequestedAt.UTC.Format "2 January 2006 at 15:04 UTC"}} and in progress: the conversation data this service keeps about you is being deleted. Look again in a few minutes.</p>{{end}}
<p>No part of the request is refused. Server logs are not searched; they expire on their own schedule.</p>
</body></html>
`))

// newCode is a confirmation code: 80 random bits in base32 (letters and
// digits, as Meta asks: alphanumeric).
func newCode() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base32.StdEncoding.EncodeToString(b)
}

// writeError answers in the APIs' error shape, with apierr's status.
func writeError(w http.ResponseWriter, err *apierr.Error) {
	api.WriteJSON(w, apierr.Status(err.Code), map[string]any{"error": map[string]any{"code": err.Code, "message": err.Message}})
}
