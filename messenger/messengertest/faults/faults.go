// Package faults is the fake platform's fault injector: it makes matching
// Graph calls fail the way Meta's do, with an error answer (a Meta-shaped
// envelope by default), a held request that ends without an answer, a
// dropped connection, or a call that is applied for real while its answer
// says otherwise. It serves its own part of the control surface,
// /_platform/faults.
package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/calllog"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// Call is one Graph call as the platform received it.
type Call = calllog.Call

// FaultMode is what a fault does to a call it matches.
type FaultMode string

// Fault modes. Only the apply_ modes change the platform's state.
const (
	// FaultRespond answers Status and Body without applying the call:
	// Meta refused it (the default).
	FaultRespond FaultMode = "respond"
	// FaultApplyThenRespond applies the call for real, state changes and
	// webhooks included, then answers Status and Body: Meta did it but
	// said it failed.
	FaultApplyThenRespond FaultMode = "apply_then_respond"
	// FaultTimeout holds the call without applying it until the client
	// gives up, Delay passes or the platform closes, then closes the
	// connection without an answer.
	FaultTimeout FaultMode = "timeout"
	// FaultApplyThenTimeout applies the call for real, then holds it like
	// FaultTimeout: the change happened but its answer was lost.
	FaultApplyThenTimeout FaultMode = "apply_then_timeout"
	// FaultDrop closes the connection without applying the call or
	// answering, after Delay if one is set: the client sees a transport
	// error.
	FaultDrop FaultMode = "drop"
)

var faultModes = []FaultMode{FaultRespond, FaultApplyThenRespond, FaultTimeout, FaultApplyThenTimeout, FaultDrop}

// answers reports whether the mode answers with a status and body.
func (m FaultMode) answers() bool { return m == FaultRespond || m == FaultApplyThenRespond }

// applies reports whether the mode lets the platform carry the call out.
func (m FaultMode) applies() bool { return m == FaultApplyThenRespond || m == FaultApplyThenTimeout }

// Fault makes the Graph calls that match it fail the way Meta's calls
// fail. A call matches when every matcher that is set agrees; the oldest
// matching fault fires. In JSON (POST /_platform/faults) the fields are
// the lowercase names below, with Delay a Go duration such as "2s".
type Fault struct {
	// ID names the fault; AddFault sets it ("f1", "f2", ...).
	ID string `json:"id"`
	// Edge is the Graph edge a call must be on, such as
	// "pass_thread_control" or "messages"; "" means a call on the node
	// itself (GET /me?fields=...). When Path is set, Edge narrows it only
	// if set too.
	Edge string `json:"edge"`
	// Path, when set, matches a call whose URL path is Path or lies under
	// it: "/v21.0/me/messages" matches that path, "/v21.0" every call of
	// that version, "/" every Graph call. Paths name the node as called
	// ("me" or the page id); use Edge with Page to match both.
	Path string `json:"path,omitempty"`
	// Method narrows the fault to one HTTP method (GET, POST, DELETE).
	Method string `json:"method,omitempty"`
	// Page narrows the fault to calls made with a token of this page.
	Page messenger.ID `json:"page,omitempty"`
	// App narrows the fault to calls made with a token of this app, by
	// name or id.
	App string `json:"app,omitempty"`
	// Status is the HTTP status answered by the respond modes (200 to
	// 599; default 500).
	Status int `json:"status,omitempty"`
	// Body is the JSON answered by the respond modes. When empty, the
	// answer is Meta's error envelope for Status: 5xx code 2, transient;
	// 429 code 613 (rate limit); 401 code 190; 403 code 200; any other
	// code 100 "Invalid parameter". A status below 400 needs a Body.
	Body json.RawMessage `json:"body,omitempty"`
	// Delay is how long the call waits before its answer (respond modes),
	// before its connection is dropped (drop), or at most while held
	// (timeout modes; zero holds until the client gives up). It is real
	// time, modelling network latency, not the platform clock: Advance
	// does not shorten it.
	Delay time.Duration `json:"-"`
	// Mode is what the fault does; empty means FaultRespond.
	Mode FaultMode `json:"mode,omitempty"`
	// Count is how many matching calls the fault affects before it
	// expires; 0 means until it is cleared.
	Count int `json:"count,omitempty"`
	// Remaining is how many more calls the fault will affect, -1 when it
	// lasts until cleared. The platform keeps it; AddFault ignores it.
	Remaining int `json:"remaining"`
	// Fired is how many calls the fault has affected so far. The platform
	// keeps it; AddFault ignores it.
	Fired int `json:"fired"`
}

// faultJSON is Fault on the wire: Delay as a Go duration string.
type faultJSON struct {
	ID        string          `json:"id"`
	Edge      string          `json:"edge"`
	Path      string          `json:"path,omitempty"`
	Method    string          `json:"method,omitempty"`
	Page      messenger.ID    `json:"page,omitempty"`
	App       string          `json:"app,omitempty"`
	Status    int             `json:"status,omitempty"`
	Body      json.RawMessage `json:"body,omitempty"`
	Delay     string          `json:"delay,omitempty"`
	Mode      FaultMode       `json:"mode,omitempty"`
	Count     int             `json:"count,omitempty"`
	Remaining int             `json:"remaining"`
	Fired     int             `json:"fired"`
}

// MarshalJSON encodes the fault as the control surface shows it, with
// Delay as a Go duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	w := faultJSON{ID: f.ID, Edge: f.Edge, Path: f.Path, Method: f.Method, Page: f.Page, App: f.App,
		Status: f.Status, Body: f.Body, Mode: f.Mode, Count: f.Count, Remaining: f.Remaining, Fired: f.Fired}
	if f.Delay != 0 {
		w.Delay = f.Delay.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes a fault strictly: an unknown key or a delay that
// is not a Go duration is an error naming it.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var w faultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%s: got a JSON %s, want %s", te.Field, te.Value, te.Type)
		}
		return err
	}
	var d time.Duration
	if w.Delay != "" {
		var err error
		if d, err = time.ParseDuration(w.Delay); err != nil {
			return fmt.Errorf("delay: %q is not a Go duration such as \"2s\"", w.Delay)
		}
	}
	*f = Fault{ID: w.ID, Edge: w.Edge, Path: w.Path, Method: w.Method, Page: w.Page, App: w.App,
		Status: w.Status, Body: w.Body, Delay: d, Mode: w.Mode, Count: w.Count, Remaining: w.Remaining, Fired: w.Fired}
	return nil
}

// Refs tells whether the pages and apps a fault names exist.
type Refs interface {
	HasPage(id messenger.ID) bool
	HasApp(ref string) bool
}

// normalize fills in defaults and reports every invalid field at once.
func (f *Fault) normalize(known Refs) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if f.Mode == "" {
		f.Mode = FaultRespond
	}
	validMode := false
	for _, m := range faultModes {
		validMode = validMode || f.Mode == m
	}
	if !validMode {
		bad("mode: %q is not one of respond, apply_then_respond, timeout, apply_then_timeout, drop", f.Mode)
	}
	if strings.Trim(f.Edge, "abcdefghijklmnopqrstuvwxyz_") != "" {
		bad("edge: %q is not a Graph edge name (lowercase letters and _)", f.Edge)
	}
	if f.Path != "" && !strings.HasPrefix(f.Path, "/") {
		bad("path: %q does not start with /", f.Path)
	}
	f.Method = strings.ToUpper(f.Method)
	if strings.Trim(f.Method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		bad("method: %q is not an HTTP method", f.Method)
	}
	if f.Page != "" && !known.HasPage(f.Page) {
		bad("page: no page %s on the platform", f.Page)
	}
	if f.App != "" && !known.HasApp(f.App) {
		bad("app: no app %q on the platform", f.App)
	}
	if f.Delay < 0 {
		bad("delay: %s is negative", f.Delay)
	}
	if f.Count < 0 {
		bad("count: %d is negative (0 means until cleared)", f.Count)
	}
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		bad("status: %d is out of range (200 to 599)", f.Status)
	}
	if len(f.Body) > 0 && !json.Valid(f.Body) {
		bad("body: not valid JSON")
	}
	switch {
	case validMode && !f.Mode.answers():
		if f.Status != 0 || len(f.Body) > 0 {
			bad("status: mode %s answers nothing; leave status and body out", f.Mode)
		}
	case f.Status == 0:
		f.Status = http.StatusInternalServerError
	}
	if f.Mode.answers() && f.Status < 400 && len(f.Body) == 0 {
		bad("body: required with status %d (no error envelope fits a status below 400)", f.Status)
	}
	return errors.Join(errs...)
}

// matches reports whether the call, as far as it is identified, is one
// the fault is for.
func (f *Fault) matches(c *Call) bool {
	if f.Path != "" {
		if !underPath(c.Path, f.Path) || (f.Edge != "" && f.Edge != c.Edge) {
			return false
		}
	} else if f.Edge != c.Edge {
		return false
	}
	return (f.Method == "" || f.Method == c.Method) &&
		(f.Page == "" || f.Page == c.PageID) &&
		(f.App == "" || f.App == c.App || f.App == string(c.AppID))
}

// underPath reports whether path is prefix or lies under it, segment by
// segment: "/v21.0/me/messages" is under "/v21.0/me" but not under
// "/v21.0/me/mess".
func underPath(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// errorFor is the error envelope Meta answers with status, for a fault
// that names no body; the wording is that of fixtures/graph_responses.json
// where it has one.
func errorFor(status int) *messenger.Error {
	var e *messenger.Error
	switch {
	case status >= 500:
		e = metaerr.New(messenger.CodeService, 0, "An unexpected error has occurred. Please retry your request later.")
		e.IsTransient = true
	case status == http.StatusTooManyRequests:
		e = metaerr.New(messenger.CodeRateLimit, 0, "(#613) Calls to this api have exceeded the rate limit.")
	case status == http.StatusUnauthorized:
		e = metaerr.BadToken()
	case status == http.StatusForbidden:
		e = metaerr.Permissions()
	default:
		e = metaerr.InvalidParameter()
	}
	e.HTTPStatus = status
	return e
}

// Injector holds the active faults and the calls they hold. Held and
// delayed calls end when the platform closes; Close waits for them.
type Injector struct {
	known Refs
	log   *zap.Logger

	mu      sync.Mutex
	active  []*Fault
	nextID  int
	closed  bool
	closing chan struct{}
	held    sync.WaitGroup
}

// New returns an injector whose faults may name the pages and apps known
// knows.
func New(known Refs, log *zap.Logger) *Injector {
	return &Injector{known: known, log: log, closing: make(chan struct{})}
}

// Add checks f, fills in its defaults and id, and makes it active.
func (fi *Injector) Add(f Fault) (Fault, error) {
	if err := f.normalize(fi.known); err != nil {
		return Fault{}, err
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()
	fi.nextID++
	f.ID = "f" + strconv.Itoa(fi.nextID)
	f.Fired, f.Remaining = 0, -1
	if f.Count > 0 {
		f.Remaining = f.Count
	}
	fi.active = append(fi.active, &f)
	fi.log.Debug("fault added", zap.String("id", f.ID), zap.String("edge", f.Edge), zap.String("path", f.Path), zap.String("mode", string(f.Mode)))
	return f, nil
}

// List returns the active faults, oldest first.
func (fi *Injector) List() []Fault {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	out := make([]Fault, len(fi.active))
	for i, f := range fi.active {
		out[i] = *f
	}
	return out
}

// Clear removes every fault and returns how many there were.
func (fi *Injector) Clear() int {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	n := len(fi.active)
	fi.active = nil
	return n
}

// ClearOne removes the fault with id and reports whether it was active.
func (fi *Injector) ClearOne(id string) bool {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	for i, f := range fi.active {
		if f.ID == id {
			fi.active = append(fi.active[:i], fi.active[i+1:]...)
			return true
		}
	}
	return false
}

// Firing is one call a fault affects: a copy of the fault as it fired,
// and Done, which the call's handler runs when it returns.
type Firing struct {
	Fault
	Done func()
}

// Match finds the oldest fault for the call and counts the call against
// it; a fault whose count is used up expires here. The caller must run
// the firing's Done when the call ends, so that Close can wait for it.
func (fi *Injector) Match(c *Call) (*Firing, bool) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	for i, f := range fi.active {
		if !f.matches(c) {
			continue
		}
		f.Fired++
		if f.Remaining > 0 {
			f.Remaining--
			if f.Remaining == 0 {
				fi.active = append(fi.active[:i], fi.active[i+1:]...)
			}
		}
		fr := &Firing{Fault: *f, Done: func() {}}
		if !fi.closed {
			fi.held.Add(1)
			fr.Done = fi.held.Done
		}
		fi.log.Debug("fault fired", zap.String("id", f.ID), zap.String("method", c.Method), zap.String("path", c.Path))
		return fr, true
	}
	return nil, false
}

// wait pauses the call for d of real time; it reports false when the
// client gave up or the platform closed first.
func (fi *Injector) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-fi.closing:
	}
	return false
}

// hold keeps the call until the client gives up, the platform closes, or
// d passes when it is set.
func (fi *Injector) hold(ctx context.Context, d time.Duration) {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
	case <-ctx.Done():
	case <-fi.closing:
	}
}

// Close releases every held or delayed call and waits until their
// handlers have returned.
func (fi *Injector) Close() {
	fi.mu.Lock()
	if !fi.closed {
		fi.closed = true
		close(fi.closing)
	}
	fi.mu.Unlock()
	fi.held.Wait()
}
