package messenger

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an error answered by the Graph API in its envelope
// {"error":{"message","type","code","error_subcode",...}}. Match it by
// (Code, Subcode), never by code alone: code 10 is both "another app owns
// this thread" and "outside the messaging window".
type Error struct {
	HTTPStatus  int    `json:"-"`
	Message     string `json:"message"`
	Type        string `json:"type,omitempty"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode,omitempty"`
	UserTitle   string `json:"error_user_title,omitempty"`
	UserMessage string `json:"error_user_msg,omitempty"`
	IsTransient bool   `json:"is_transient,omitempty"`
	FBTraceID   string `json:"fbtrace_id,omitempty"`
}

// ErrorEnvelope is the body of a Graph API error response.
type ErrorEnvelope struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("graph api: %s (code %d", e.Message, e.Code)
	if e.Subcode != 0 {
		s += fmt.Sprintf(", subcode %d", e.Subcode)
	}
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(", http %d", e.HTTPStatus)
	}
	if e.FBTraceID != "" {
		s += ", fbtrace_id " + e.FBTraceID
	}
	return s + ")"
}

// Error codes and subcodes Baton acts on (REFERENCE §1.4, §4).
const (
	CodeUnknown            = 1
	CodeService            = 2
	CodeAppRateLimit       = 4
	CodePermission         = 10
	CodeUserRateLimit      = 17
	CodeUnsupported        = 27 // thread-control call not supported in this page mode
	CodePageRateLimit      = 32
	CodeInvalidParameter   = 100
	CodeBadToken           = 190
	CodePermissionsError   = 200
	CodeUserUnavailable    = 551
	CodeRateLimit          = 613
	SubcodeNotOwner        = 2018300
	SubcodeOutsideWindow   = 2018278
	SubcodeNoMatchingUser  = 2018001
	SubcodeIncorrectAppID  = 2018164
	SubcodeSecondaryHidden = 2018234
	SubcodeNotReceiver     = 2018171
	SubcodeUserUnavailable = 1545041
	SubcodeIGNotOwner      = 2534037 // Instagram: the action is invalid since it's not the thread owner
)

func asGraphError(err error) (*Error, bool) {
	var ge *Error
	ok := errors.As(err, &ge)
	return ge, ok
}

func hasCode(err error, code, subcode int) bool {
	ge, ok := asGraphError(err)
	return ok && ge.Code == code && (subcode == 0 || ge.Subcode == subcode)
}

// IsNotOwner reports whether Meta refused because another app controls the
// thread (10/2018300). Baton's ownership record is stale: reconcile.
func IsNotOwner(err error) bool { return hasCode(err, CodePermission, SubcodeNotOwner) }

// IsOutsideWindow reports a send outside the 24-hour messaging window
// without an allowed tag (10/2018278).
func IsOutsideWindow(err error) bool { return hasCode(err, CodePermission, SubcodeOutsideWindow) }

// IsRateLimited reports a rate-limit refusal: 613 for Messenger calls, and
// the Graph-wide app (4), user (17) and page (32) limits. The call was not
// applied, so it is safe to retry later.
func IsRateLimited(err error) bool {
	ge, ok := asGraphError(err)
	if !ok {
		return false
	}
	switch ge.Code {
	case CodeRateLimit, CodeAppRateLimit, CodeUserRateLimit, CodePageRateLimit:
		return true
	}
	return false
}

// IsBadToken reports an invalid or expired access token (190).
func IsBadToken(err error) bool { return hasCode(err, CodeBadToken, 0) }

// IsUserUnavailable reports that the person cannot be reached (551).
func IsUserUnavailable(err error) bool { return hasCode(err, CodeUserUnavailable, 0) }

// IsTransient reports an error Meta marks as transient (is_transient, or
// codes 1 and 2): the same call may succeed later.
func IsTransient(err error) bool {
	ge, ok := asGraphError(err)
	return ok && (ge.IsTransient || ge.Code == CodeUnknown || ge.Code == CodeService)
}

// IsUncertain reports whether a failed call may still have been applied by
// Meta: the request left, but no answer was read (a timeout, a reset
// connection, an unreadable body). The caller should look at the thread
// owner before assuming either outcome.
func IsUncertain(err error) bool {
	var te *TransportError
	return errors.As(err, &te) && te.Sent
}

// TransportError is a call that got no Graph answer.
type TransportError struct {
	Op         string
	Sent       bool // the request may have reached Meta
	HTTPStatus int  // set when an HTTP answer came without a Graph envelope
	Err        error
}

func (e *TransportError) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("graph api %s: http %d: %v", e.Op, e.HTTPStatus, e.Err)
	}
	return fmt.Sprintf("graph api %s: %v", e.Op, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// retryable reports whether a call that failed with err may be sent again.
// Reads are always safe to repeat on transport failures and server errors;
// writes only when Meta said it did not apply them (rate limits), or when
// the request never left.
func retryable(method string, err error) bool {
	if IsRateLimited(err) {
		return true
	}
	var te *TransportError
	if errors.As(err, &te) {
		if !te.Sent {
			return true
		}
		return method == http.MethodGet && (te.HTTPStatus == 0 || te.HTTPStatus >= 500)
	}
	return method == http.MethodGet && IsTransient(err)
}
