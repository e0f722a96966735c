// Package apierr is the one error type at Baton's API edge: a code and a
// message meant for the caller, and one table from code to HTTP status.
// Parts return these for what the caller got wrong; the state machine's
// refusals and Meta's errors keep their own types and are classified here
// by type, never by their text.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// Code classifies an error for the caller.
type Code string

// The codes, as the APIs write them in {"error":{"code":...}}.
const (
	Invalid      Code = "invalid"           // the request is wrong
	NotFound     Code = "not_found"         // no such page, thread, delivery or endpoint
	Unauthorized Code = "unauthorized"      // no token, or a wrong one
	Forbidden    Code = "forbidden"         // the token is valid, but not for this page
	Refused      Code = "refused"           // the state machine says Meta would refuse it
	GraphAPI     Code = "graph_api"         // Meta answered with an error
	Unavailable  Code = "graph_unavailable" // Meta did not answer (unreachable, timed out, not JSON): retry
	Internal     Code = "internal"          // Baton's own failure: logged, not shown
	// NotOwner: the thread is in a shard this replica does not hold. The
	// cluster's forwarding answers with the owner's answer instead, so a
	// caller meets it only where nothing forwards.
	NotOwner Code = "not_owner"
	// OwnerChanging: no replica can act for the thread now (no live
	// owner, or it moved while the request was on its way): retry.
	OwnerChanging Code = "owner_changing"
)

// ShardHeader names, on a NotOwner answer, the shard whose owner must
// answer instead: what the cluster's forwarding looks for, so that it
// never has to parse a body.
const ShardHeader = "X-Baton-Shard"

// statuses is the one table from code to HTTP status.
var statuses = map[Code]int{
	Invalid:      http.StatusBadRequest,
	NotFound:     http.StatusNotFound,
	Unauthorized: http.StatusUnauthorized,
	Forbidden:    http.StatusForbidden,
	Refused:      http.StatusConflict,
	GraphAPI:     http.StatusBadGateway,
	Unavailable:  http.StatusServiceUnavailable,
	Internal:     http.StatusInternalServerError,
	// 421 is HTTP's "this server is not the one to answer": never a
	// status anything else at Baton's edge uses, so the forwarding cannot
	// mistake another error for it.
	NotOwner:      http.StatusMisdirectedRequest,
	OwnerChanging: http.StatusServiceUnavailable,
}

// Status is the HTTP status of a code.
func Status(c Code) int {
	if s, ok := statuses[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error is an error meant for the caller of an API.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf makes an Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf classifies any error: a thread this replica does not act for is
// NotOwner, an *Error keeps its code, a refusal of the state machine is
// Refused, an error from Meta is GraphAPI, a Graph call that got no
// answer is Unavailable, the rest is Internal.
func CodeOf(err error) Code {
	var ae *Error
	var ge *messenger.Error
	var te *messenger.TransportError
	var ne *store.NotOwnedError
	switch {
	case errors.As(err, &ne):
		// First: nothing of the request was done, whatever wraps it.
		return NotOwner
	case errors.As(err, &ae):
		return ae.Code
	case errors.Is(err, statemachine.ErrRefused):
		return Refused
	case errors.As(err, &ge):
		return GraphAPI
	case errors.As(err, &te):
		return Unavailable
	}
	return Internal
}

// Retryable reports whether the same request may succeed later: Meta did
// not answer, or said its failure is transient or a rate limit.
func Retryable(err error) bool {
	switch CodeOf(err) {
	case Unavailable, OwnerChanging:
		return true
	case GraphAPI:
		return messenger.IsTransient(err) || messenger.IsRateLimited(err)
	}
	return false
}

// MessageOf is what the caller is told of err; Internal errors are not
// shown.
func MessageOf(err error) string {
	if CodeOf(err) == Internal {
		return "internal error; see the server log"
	}
	return err.Error()
}

// Shard is the shard of a thread this replica does not act for, if err
// is one (a *store.NotOwnedError, however wrapped).
func Shard(err error) (int, bool) {
	var ne *store.NotOwnedError
	if !errors.As(err, &ne) {
		return 0, false
	}
	return ne.Shard, true
}

// SetHeaders sets on h the headers err's answer carries besides its
// status: ShardHeader for a thread this replica does not act for. A
// writer calls it before WriteHeader.
func SetHeaders(h http.Header, err error) {
	if shard, ok := Shard(err); ok {
		h.Set(ShardHeader, strconv.Itoa(shard))
	}
}
