package graphapi

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/statemachine"
)

// newError is an error in Meta's envelope made by Baton, with a trace id
// of its own so that a bot's logs can tell it from Meta's.
func newError(status, code, subcode int, msg string) *messenger.Error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &messenger.Error{HTTPStatus: status, Message: msg, Type: "OAuthException", Code: code, Subcode: subcode,
		FBTraceID: "baton_" + base64.RawURLEncoding.EncodeToString(b)}
}

func writeError(w http.ResponseWriter, e *messenger.Error) {
	writeJSON(w, e.HTTPStatus, messenger.ErrorEnvelope{Error: e})
}

// writeFailure answers a call for op that failed with err. A thread of a
// shard this replica does not hold is 421 with the shard in
// apierr.ShardHeader, which the cluster's forwarding turns into the
// owner's answer; should it reach a bot all the same (nothing forwards),
// Meta's transient error shape tells its SDK to try again. The rest is
// errorFor's.
func writeFailure(w http.ResponseWriter, op statemachine.Op, err error) {
	if _, ok := apierr.Shard(err); ok {
		apierr.SetHeaders(w.Header(), err)
		e := newError(http.StatusMisdirectedRequest, messenger.CodeService, 0, "Service temporarily unavailable")
		e.IsTransient = true
		writeError(w, e)
		return
	}
	writeError(w, errorFor(op, err))
}

// WriteUnavailable is Meta's transient error, 503: what a call on /graph
// is answered when no replica can act for its thread now (the cluster's
// forwarding sets Retry-After).
func WriteUnavailable(w http.ResponseWriter, _ *http.Request) { writeError(w, unavailable()) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errorFor answers a refused or failed call as Meta would: Meta's own
// errors unchanged, the state machine's refusals with the codes Meta uses
// for them (REFERENCE §1.4).
func errorFor(op statemachine.Op, err error) *messenger.Error {
	var ge *messenger.Error
	var ae *apierr.Error
	bad := http.StatusBadRequest
	switch {
	case errors.As(err, &ge):
		return ge
	case errors.Is(err, statemachine.ErrNotOwner):
		switch op {
		case statemachine.OpRelease:
			return newError(bad, 100, 0, "(#100) Only the current thread owner can release")
		case statemachine.OpExtend:
			return newError(bad, 100, 0, "(#100) Only the current thread owner can extend")
		}
		return newError(bad, 100, 0, "(#100) calling app is not the thread owner")
	case errors.Is(err, statemachine.ErrTakeNotPermitted), errors.Is(err, statemachine.ErrNotPrimary):
		return newError(bad, messenger.CodePermissionsError, 0, "(#200) Permissions error")
	case errors.Is(err, statemachine.ErrNotInMode) && op == statemachine.OpTake:
		return newError(bad, messenger.CodeUnsupported, 0, "(#27) Take thread control is not supported when Conversation Routing is not enabled.")
	case errors.Is(err, statemachine.ErrNotInMode):
		return newError(bad, messenger.CodeUnsupported, 0, "(#27) not supported when Conversation Routing is enabled")
	case errors.Is(err, statemachine.ErrTargetRequired):
		return newError(bad, 100, 0, "(#100) The parameter target_app_id is required")
	case errors.Is(err, statemachine.ErrRefused):
		return newError(bad, 100, 0, "(#100) Invalid parameter")
	case errors.As(err, &ae):
		return newError(bad, 100, 0, "(#100) "+ae.Message)
	}
	e := newError(http.StatusServiceUnavailable, messenger.CodeService, 0, "Service temporarily unavailable")
	e.IsTransient = true
	return e
}
