package messengertest

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"

	"github.com/batonhq/baton/messenger"
)

// graphError builds an error in Meta's envelope, with the bodies of
// REFERENCE §1.4 and fixtures/graph_responses.json.
func graphError(code, subcode int, msg string) *messenger.Error {
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

func errInvalidParameter() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, 0, "(#100) Invalid parameter")
}

func errParamRequired(name string) *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, 0, "(#100) The parameter "+name+" is required")
}

func errBadToken() *messenger.Error {
	return graphError(messenger.CodeBadToken, 0, "Invalid OAuth access token.")
}

func errBadProof() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, 0, "Invalid appsecret_proof provided in the API argument")
}

func errNoUser() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, messenger.SubcodeNoMatchingUser, "(#100) No matching user found")
}

func errNotOwnerPass() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, 0, "(#100) calling app is not the thread owner")
}

func errNotOwnerRelease() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, 0, "(#100) Only the current thread owner can release")
}

func errNotOwnerExtend() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, 0, "(#100) Only the current thread owner can extend")
}

func errIncorrectAppID() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, messenger.SubcodeIncorrectAppID, "(#100) Incorrect App ID.")
}

func errCRNotEnabled() *messenger.Error {
	return graphError(messenger.CodeUnsupported, 0, "(#27) Take thread control is not supported when Conversation Routing is not enabled.")
}

func errCREnabled() *messenger.Error {
	return graphError(messenger.CodeUnsupported, 0, "(#27) not supported when Conversation Routing is enabled")
}

func errPermissions() *messenger.Error {
	return graphError(messenger.CodePermissionsError, 0, "(#200) Permissions error")
}

func errSecondaryHidden() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, messenger.SubcodeSecondaryHidden,
		"(#100) Denying visibility of any secondary receiver to another secondary receiver other than itself.")
}

func errNotReceiver() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, messenger.SubcodeNotReceiver, "Only available to Primary and Secondary Receivers.")
}

func errSendNotOwner() *messenger.Error {
	return graphError(messenger.CodePermission, messenger.SubcodeNotOwner,
		"(#10) Message failed to send because another app is controlling this thread now.")
}

func errOutsideWindow() *messenger.Error {
	return graphError(messenger.CodePermission, messenger.SubcodeOutsideWindow,
		"(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview")
}

func errUnknownPath(path string) *messenger.Error {
	e := graphError(2500, 0, "Unknown path components: "+path)
	return e
}

func errUnsupported(method, node string) *messenger.Error {
	e := graphError(messenger.CodeInvalidParameter, 33, "Unsupported "+method+" request. Object with ID '"+node+
		"' does not exist, cannot be loaded due to missing permissions, or does not support this operation.")
	e.Type = "GraphMethodException"
	return e
}

// subcodeIGOutsideWindow is Instagram's "outside of allowed window"
// subcode (code 10), Messenger's 2018278.
const subcodeIGOutsideWindow = 2534022

// errIGNotOwner is Instagram's refusal of a thread-control call by an app
// that does not own the thread, where Messenger answers a plain 100.
func errIGNotOwner() *messenger.Error {
	return graphError(messenger.CodeInvalidParameter, messenger.SubcodeIGNotOwner, "The action is invalid since it's not the thread owner.")
}

func errIGOutsideWindow() *messenger.Error {
	return graphError(messenger.CodePermission, subcodeIGOutsideWindow, "(#10) This message is sent outside of allowed window.")
}

// notOwner is the refusal of a thread-control call by a non-owner on the
// page's platform: Messenger's own (msgr) or Instagram's.
func notOwner(pg *page, msgr func() *messenger.Error) *messenger.Error {
	if pg.instagram {
		return errIGNotOwner()
	}
	return msgr()
}

func outsideWindow(pg *page) *messenger.Error {
	if pg.instagram {
		return errIGOutsideWindow()
	}
	return errOutsideWindow()
}
