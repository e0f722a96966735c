// Package metaerr builds the Graph API errors the fake platform answers
// with, in Meta's envelope and wording.
package metaerr

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"

	"github.com/batonhq/baton/messenger"
)

// New builds an error in Meta's envelope, with the bodies of
// REFERENCE §1.4 and fixtures/graph_responses.json.
func New(code, subcode int, msg string) *messenger.Error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &messenger.Error{
		HTTPStatus: http.StatusBadRequest,
		Message:    msg,
		Type:       "OAuthException",
		Code:       code,
		Subcode:    subcode,
		FBTraceID:  base64.RawURLEncoding.EncodeToString(b),
	}
}

// InvalidParameter is the generic (#100) Invalid parameter.
func InvalidParameter() *messenger.Error {
	return New(messenger.CodeInvalidParameter, 0, "(#100) Invalid parameter")
}

// ParamRequired is (#100) for a missing required parameter name.
func ParamRequired(name string) *messenger.Error {
	return New(messenger.CodeInvalidParameter, 0, "(#100) The parameter "+name+" is required")
}

// BadToken is code 190, an access token Meta does not accept.
func BadToken() *messenger.Error {
	return New(messenger.CodeBadToken, 0, "Invalid OAuth access token.")
}

// BadProof is a wrong appsecret_proof.
func BadProof() *messenger.Error {
	return New(messenger.CodeInvalidParameter, 0, "Invalid appsecret_proof provided in the API argument")
}

// NoUser is (#100) for a PSID the page does not know.
func NoUser() *messenger.Error {
	return New(messenger.CodeInvalidParameter, messenger.SubcodeNoMatchingUser, "(#100) No matching user found")
}

// NotOwnerPass is Messenger's refusal of a pass by an app that does not own the thread.
func NotOwnerPass() *messenger.Error {
	return New(messenger.CodeInvalidParameter, 0, "(#100) calling app is not the thread owner")
}

// NotOwnerRelease is Messenger's refusal of a release by an app that does not own the thread.
func NotOwnerRelease() *messenger.Error {
	return New(messenger.CodeInvalidParameter, 0, "(#100) Only the current thread owner can release")
}

// NotOwnerExtend is Messenger's refusal of an extend by an app that does not own the thread.
func NotOwnerExtend() *messenger.Error {
	return New(messenger.CodeInvalidParameter, 0, "(#100) Only the current thread owner can extend")
}

// IncorrectAppID is (#100) for a target app id that is not connected.
func IncorrectAppID() *messenger.Error {
	return New(messenger.CodeInvalidParameter, messenger.SubcodeIncorrectAppID, "(#100) Incorrect App ID.")
}

// CRNotEnabled is (#27) for take_thread_control on a page without Conversation Routing.
func CRNotEnabled() *messenger.Error {
	return New(messenger.CodeUnsupported, 0, "(#27) Take thread control is not supported when Conversation Routing is not enabled.")
}

// CREnabled is (#27) for a legacy call on a page with Conversation Routing.
func CREnabled() *messenger.Error {
	return New(messenger.CodeUnsupported, 0, "(#27) not supported when Conversation Routing is enabled")
}

// Permissions is (#200), a call the token may not make.
func Permissions() *messenger.Error {
	return New(messenger.CodePermissionsError, 0, "(#200) Permissions error")
}

// SecondaryHidden is the refusal to show a secondary receiver other secondary receivers.
func SecondaryHidden() *messenger.Error {
	return New(messenger.CodeInvalidParameter, messenger.SubcodeSecondaryHidden,
		"(#100) Denying visibility of any secondary receiver to another secondary receiver other than itself.")
}

// NotReceiver is the refusal of a call by an app that is not a receiver.
func NotReceiver() *messenger.Error {
	return New(messenger.CodeInvalidParameter, messenger.SubcodeNotReceiver, "Only available to Primary and Secondary Receivers.")
}

// SendNotOwner is (#10) for a send by an app that does not control the thread.
func SendNotOwner() *messenger.Error {
	return New(messenger.CodePermission, messenger.SubcodeNotOwner,
		"(#10) Message failed to send because another app is controlling this thread now.")
}

// OutsideWindow is (#10) for a send outside the messaging window.
func OutsideWindow() *messenger.Error {
	return New(messenger.CodePermission, messenger.SubcodeOutsideWindow,
		"(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview")
}

// UnknownPath is code 2500 for a path the Graph API does not serve.
func UnknownPath(path string) *messenger.Error {
	e := New(2500, 0, "Unknown path components: "+path)
	return e
}

// Unsupported is code 100/33 for a method a node does not support.
func Unsupported(method, node string) *messenger.Error {
	e := New(messenger.CodeInvalidParameter, 33, "Unsupported "+method+" request. Object with ID '"+node+
		"' does not exist, cannot be loaded due to missing permissions, or does not support this operation.")
	e.Type = "GraphMethodException"
	return e
}

// SubcodeIGOutsideWindow is Instagram's "outside of allowed window"
// subcode (code 10), Messenger's 2018278.
const SubcodeIGOutsideWindow = 2534022

// IGNotOwner is Instagram's refusal of a thread-control call by an app
// that does not own the thread, where Messenger answers a plain 100.
func IGNotOwner() *messenger.Error {
	return New(messenger.CodeInvalidParameter, messenger.SubcodeIGNotOwner, "The action is invalid since it's not the thread owner.")
}

// IGOutsideWindow is Instagram's (#10) for a send outside the messaging window.
func IGOutsideWindow() *messenger.Error {
	return New(messenger.CodePermission, SubcodeIGOutsideWindow, "(#10) This message is sent outside of allowed window.")
}
