package messenger

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
)

// Signature headers Meta sets on every webhook POST.
const (
	HeaderSignature256  = "X-Hub-Signature-256"
	HeaderSignatureSHA1 = "X-Hub-Signature" // legacy; HMAC-SHA1
)

// Signature errors. All of them mean "do not trust this body".
var (
	ErrSignatureMissing   = errors.New("messenger: signature header missing")
	ErrSignatureMalformed = errors.New("messenger: signature header malformed")
	ErrSignatureMismatch  = errors.New("messenger: signature does not match body")
)

// Sign returns the X-Hub-Signature-256 value for body: "sha256=" and the
// lowercase hex HMAC-SHA256 of the exact bytes, keyed with the app secret.
func Sign(secret, body []byte) string {
	return "sha256=" + hexMAC(sha256.New, secret, body)
}

// SignSHA1 returns the legacy X-Hub-Signature value ("sha1=<hex>"), which
// many third-party SDKs still check instead of the sha256 one.
func SignSHA1(secret, body []byte) string {
	return "sha1=" + hexMAC(sha1.New, secret, body)
}

func hexMAC(h func() hash.Hash, secret, body []byte) string {
	m := hmac.New(h, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyOptions selects which signature headers are accepted.
type VerifyOptions struct {
	// AllowSHA1 accepts a request that carries only the legacy
	// X-Hub-Signature header. Meta documents sha256; keep this off unless a
	// sender is known to sign with sha1 alone.
	AllowSHA1 bool
}

// Verify checks the signature headers of a webhook request against body,
// which must be the raw bytes as received: never a re-encoding, since Meta
// signs its own escaped form. The comparison is constant-time.
func Verify(h http.Header, body, secret []byte, opt VerifyOptions) error {
	if v := h.Get(HeaderSignature256); v != "" {
		return verifyValue(v, "sha256=", sha256.New, secret, body)
	}
	if opt.AllowSHA1 {
		if v := h.Get(HeaderSignatureSHA1); v != "" {
			return verifyValue(v, "sha1=", sha1.New, secret, body)
		}
	}
	return ErrSignatureMissing
}

func verifyValue(v, prefix string, h func() hash.Hash, secret, body []byte) error {
	hexSig, ok := strings.CutPrefix(v, prefix)
	if !ok {
		return fmt.Errorf("%w: want prefix %q", ErrSignatureMalformed, prefix)
	}
	// Hex is case-insensitive; decoding compares the MAC itself, so an
	// upper-case signature of the right bytes is still the right signature.
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignatureMalformed, err)
	}
	m := hmac.New(h, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return ErrSignatureMismatch
	}
	return nil
}
