// Package calllog records the Graph API calls the fake platform receives.
package calllog

import (
	"sync"
	"time"

	"github.com/batonhq/baton/messenger"
)

// Call is one Graph API request the platform received.
type Call struct {
	Seq     int               `json:"seq"`
	At      time.Time         `json:"at"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Edge    string            `json:"edge"`
	PageID  messenger.ID      `json:"page_id,omitempty"`
	AppID   messenger.ID      `json:"app_id,omitempty"`
	App     string            `json:"app,omitempty"`
	Params  map[string]string `json:"params,omitempty"`
	Status  int               `json:"status"`
	Error   *messenger.Error  `json:"error,omitempty"`
	Success bool              `json:"success"`
	// Fault is the id of the fault that answered the call in the
	// platform's place; empty when none did. Status is then the status the
	// fault answers (0 when it answers nothing: a held or dropped call),
	// and Error the Graph error in its body, if any.
	Fault string `json:"fault,omitempty"`
	// Applied tells, for a call a fault let through first
	// (apply_then_respond, apply_then_timeout), whether the platform
	// carried it out: its state changes and webhooks are then real,
	// whatever the answer said.
	Applied bool `json:"applied,omitempty"`
}

// maxRecorded is how many calls a Log keeps.
const maxRecorded = 10000

// Log keeps the most recent Graph calls, numbered in arrival order. Its
// zero value is ready to use.
type Log struct {
	mu    sync.Mutex
	calls []Call
	seq   int
}

// Record numbers c and keeps it, dropping the oldest call when full.
func (l *Log) Record(c Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	c.Seq = l.seq
	if len(l.calls) >= maxRecorded {
		l.calls = l.calls[1:]
	}
	l.calls = append(l.calls, c)
}

// List returns the kept calls, oldest first.
func (l *Log) List() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Call(nil), l.calls...)
}
