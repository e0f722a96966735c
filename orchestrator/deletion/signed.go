package deletion

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/batonhq/baton/messenger"
)

// Meta's signed_request (Facebook Login's format, which the data deletion
// callback uses): base64url(HMAC-SHA256(app secret, payload part)) "."
// base64url(JSON payload), the JSON holding algorithm "HMAC-SHA256",
// issued_at (Unix seconds) and user_id (the app-scoped id of the person).
// The signature is over the payload part as sent, not the decoded JSON;
// Meta's own PHP example pads neither part, some of its requests do: both
// are read. Source: developers.facebook.com/docs/development/create-an-app/
// app-dashboard/data-deletion-callback (the example's parse_signed_request).

// SignedRequest is the payload of a verified signed_request.
type SignedRequest struct {
	Algorithm string `json:"algorithm"`
	IssuedAt  int64  `json:"issued_at"`
	Expires   int64  `json:"expires,omitempty"`
	UserID    string `json:"user_id"`
}

// Why a signed_request is refused; Parse's errors wrap one of them.
var (
	ErrMalformed = errors.New("signed_request is malformed")
	ErrSignature = errors.New("signed_request signature does not match the app secret")
	ErrAlgorithm = errors.New("signed_request algorithm is not HMAC-SHA256")
	ErrExpired   = errors.New("signed_request is too old")
)

// maxSignedRequest bounds what is decoded: Meta's are a few hundred bytes.
const maxSignedRequest = 8 << 10

// clockSkew is how far in the future issued_at may be: Meta's clock and
// ours are not the same.
const clockSkew = 5 * time.Minute

// Parse verifies a signed_request with the app's secret (in constant
// time, before the payload is trusted) and returns its payload. It is
// refused when malformed, not signed with secret, of another algorithm,
// issued more than maxAge before now (or later than now by more than a
// few minutes), or without a user id that is a Meta id.
func Parse(raw string, secret []byte, now time.Time, maxAge time.Duration) (SignedRequest, error) {
	var sr SignedRequest
	if len(raw) > maxSignedRequest {
		return sr, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxSignedRequest)
	}
	sigPart, payloadPart, ok := strings.Cut(raw, ".")
	if !ok || sigPart == "" || payloadPart == "" || strings.Contains(payloadPart, ".") {
		return sr, fmt.Errorf("%w: want two base64url parts joined by a dot", ErrMalformed)
	}
	sig, err := decodePart(sigPart)
	if err != nil {
		return sr, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	payload, err := decodePart(payloadPart)
	if err != nil {
		return sr, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(payloadPart))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return sr, ErrSignature
	}
	if err := json.Unmarshal(payload, &sr); err != nil {
		return SignedRequest{}, fmt.Errorf("%w: payload is not JSON of Meta's fields: %v", ErrMalformed, err)
	}
	if !strings.EqualFold(sr.Algorithm, "HMAC-SHA256") {
		return SignedRequest{}, fmt.Errorf("%w: %q", ErrAlgorithm, sr.Algorithm)
	}
	issued := time.Unix(sr.IssuedAt, 0)
	switch {
	case sr.IssuedAt <= 0:
		return SignedRequest{}, fmt.Errorf("%w: no issued_at", ErrMalformed)
	case now.Sub(issued) > maxAge:
		return SignedRequest{}, fmt.Errorf("%w: issued at %s, more than %s ago", ErrExpired, issued.UTC().Format(time.RFC3339), maxAge)
	case issued.Sub(now) > clockSkew:
		return SignedRequest{}, fmt.Errorf("%w: issued_at %s is in the future", ErrMalformed, issued.UTC().Format(time.RFC3339))
	case !messenger.ValidID(sr.UserID):
		return SignedRequest{}, fmt.Errorf("%w: user_id %q is not a Meta id (1 to 20 digits)", ErrMalformed, sr.UserID)
	}
	return sr, nil
}

// decodePart decodes base64url with or without its padding.
func decodePart(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// Sign makes a signed_request as Meta does (unpadded base64url): for
// tests, the fake platform and anyone checking a callback by hand.
func Sign(secret []byte, sr SignedRequest) string {
	payload, _ := json.Marshal(sr) // strings and numbers: it cannot fail
	p := base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(p))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) + "." + p
}
