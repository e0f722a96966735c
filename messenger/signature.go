package messenger

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
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
	return verify(h, body, opt, freshMACs{secret, sha256.New}, freshMACs{secret, sha1.New})
}

// Verifier is Verify for one app's secret, which keeps its keyed HMACs
// for the next webhook: keying one costs two blocks of the hash and a
// handful of allocations, per webhook. It is safe for concurrent use.
type Verifier struct {
	opt          VerifyOptions
	sha256, sha1 pooledMACs
}

// NewVerifier returns a Verifier of webhooks signed with secret.
func NewVerifier(secret []byte, opt VerifyOptions) *Verifier {
	key := bytes.Clone(secret)
	v := &Verifier{opt: opt}
	v.sha256.New = func() any { return hmac.New(sha256.New, key) }
	v.sha1.New = func() any { return hmac.New(sha1.New, key) }
	return v
}

// Verify is Verify with the Verifier's secret and options.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	return verify(h, body, v.opt, &v.sha256, &v.sha1)
}

// macs gives keyed HMACs and takes them back once used.
type macs interface {
	get() hash.Hash
	put(hash.Hash)
}

type freshMACs struct {
	secret []byte
	h      func() hash.Hash
}

func (f freshMACs) get() hash.Hash { return hmac.New(f.h, f.secret) }
func (freshMACs) put(hash.Hash)    {}

// pooledMACs are HMACs keyed once, reset to their keyed state when put
// back.
type pooledMACs struct{ sync.Pool }

func (p *pooledMACs) get() hash.Hash { return p.Get().(hash.Hash) }
func (p *pooledMACs) put(m hash.Hash) {
	m.Reset()
	p.Put(m)
}

func verify(h http.Header, body []byte, opt VerifyOptions, sha256s, sha1s macs) error {
	if v := h.Get(HeaderSignature256); v != "" {
		return verifyValue(v, "sha256=", sha256s, body)
	}
	if opt.AllowSHA1 {
		if v := h.Get(HeaderSignatureSHA1); v != "" {
			return verifyValue(v, "sha1=", sha1s, body)
		}
	}
	return ErrSignatureMissing
}

func verifyValue(v, prefix string, ms macs, body []byte) error {
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
	m := ms.get()
	defer ms.put(m)
	m.Write(body)
	var sum [sha256.Size]byte
	if !hmac.Equal(got, m.Sum(sum[:0])) {
		return ErrSignatureMismatch
	}
	return nil
}
