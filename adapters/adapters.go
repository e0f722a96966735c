// Package adapters delivers events to bots. An Adapter is one way to reach
// a bot; each kind lives in a subpackage and is registered by its YAML type
// name. The retry decision for HTTP answers is made in one place, Check.
package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Thread is the state of the thread when the event was routed.
type Thread struct {
	State      string `json:"state"`
	Owner      string `json:"owner"`        // app name; empty when idle
	OwnerAppID string `json:"owner_app_id"` // empty when idle
}

// Delivery is one event for one bot. ID is stable across retries, so a bot
// can drop a repeat.
type Delivery struct {
	ID      string `json:"id"`
	App     string `json:"app"`
	PageID  string `json:"page_id"`
	PSID    string `json:"psid"`
	Channel string `json:"channel"` // messaging | standby
	Kind    string `json:"kind"`
	Attempt int    `json:"attempt"`
	Thread  Thread `json:"thread"`
	// Retried is set only on a dead letter an operator retried: it may
	// come after later events of its thread (see Retried).
	Retried *Retried        `json:"retried,omitempty"`
	Event   json.RawMessage `json:"event"` // as Meta sent it; the last field
}

// Retried describes a dead letter delivered again: when it died, and
// whether later events of its thread were delivered since, in which case
// the bot gets it out of order.
type Retried struct {
	DeadAt         time.Time `json:"dead_at"`
	LaterDelivered bool      `json:"later_delivered"`
}

// Action is something a bot asks for in its answer to a delivery.
type Action struct {
	Type     string `json:"type"` // pass | take | request | release | extend
	To       string `json:"to,omitempty"`
	Metadata string `json:"metadata,omitempty"`
	Duration string `json:"duration,omitempty"` // extend, as a Go duration ("72h")
}

// Result is a successful delivery's outcome.
type Result struct {
	Status  int
	Actions []Action
}

// Adapter delivers to one bot.
type Adapter interface {
	Deliver(ctx context.Context, d *Delivery) (Result, error)
}

// Error is a failed delivery. Retry says whether sending it again may
// succeed; RetryAfter is the bot's own hint; Location is where a 3xx
// answer pointed (never requested).
type Error struct {
	Status     int
	Retry      bool
	RetryAfter time.Duration
	Location   string
	Err        error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("bot answered %d: %v", e.Status, e.Err)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether err may succeed if sent again; errors that are
// not *Error (a transport failure) are.
func Retryable(err error) bool {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Retry
	}
	return true
}

// Check decides from an HTTP answer whether a delivery succeeded, and if
// not whether to retry: 2xx succeeds; 408, 429 and 5xx are retried (with
// Retry-After when given); 3xx is final, carrying its Location; every
// other status is final, carrying the body.
func Check(status int, h http.Header, body []byte, now time.Time) error {
	if status/100 == 2 {
		return nil
	}
	if status/100 == 3 {
		// Not retried: the same URL redirects again. A redirect is a
		// misconfiguration (the bot moved) or an attempt to point Baton
		// elsewhere; either way an operator fixes the adapter's url.
		loc := h.Get("Location")
		return &Error{Status: status, Location: loc, Err: fmt.Errorf("redirect to %.200q not followed: Baton posts only to the adapter's url", loc)}
	}
	err := &Error{Status: status, Err: fmt.Errorf("%.200q", strings.TrimSpace(string(body)))}
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		err.Retry = true
		err.RetryAfter = retryAfter(h.Get("Retry-After"), now)
	}
	return err
}

func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Settings configure one adapter instance.
type Settings struct {
	URL     string
	Secret  string
	Timeout time.Duration
	// Client is the shared client (see NewClient); when nil the adapter
	// gets one of its own, which AllowLinkLocal configures.
	Client         *http.Client
	AllowLinkLocal bool
}

// HTTPClient is the client an HTTP adapter uses: the shared one (pooled
// connections) with the adapter's own timeout. It never follows a
// redirect, whoever built the shared client.
func (s Settings) HTTPClient() *http.Client {
	var c http.Client
	if s.Client != nil {
		c = *s.Client
	} else {
		c = *NewClient(ClientOptions{AllowLinkLocal: s.AllowLinkLocal})
	}
	if s.Timeout > 0 {
		c.Timeout = s.Timeout
	}
	c.CheckRedirect = refuseRedirect
	return &c
}

// Factory builds an adapter from its settings.
type Factory func(Settings) (Adapter, error)

// Registry maps adapter type names to factories; it refuses a name twice.
type Registry struct {
	mu sync.Mutex
	m  map[string]Factory
}

// Register adds a factory under name.
func (r *Registry) Register(name string, f Factory) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]Factory{}
	}
	if _, dup := r.m[name]; dup {
		return fmt.Errorf("adapter type %q registered twice", name)
	}
	r.m[name] = f
	return nil
}

// Build makes an adapter of type name.
func (r *Registry) Build(name string, s Settings) (Adapter, error) {
	r.mu.Lock()
	f := r.m[name]
	r.mu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("unknown adapter type %q (known: %s)", name, strings.Join(r.Types(), ", "))
	}
	return f(s)
}

// Types lists the registered type names.
func (r *Registry) Types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.m))
	for k := range r.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
