package messenger

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	secret := []byte("app-secret")
	// Meta's escaped form of a body with non-ASCII text and a URL.
	metaBody := []byte(`{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1,"message":{"mid":"m","text":"\u00e4\u00f6\u00e5 \ud83d\ude00 https:\/\/x.y\/z"}}]}]}`)
	sig := Sign(secret, metaBody)

	var v any
	_ = json.Unmarshal(metaBody, &v)
	reencoded, _ := json.Marshal(v) // what a careless receiver verifies

	flipped := append([]byte(nil), metaBody...)
	flipped[10] ^= 1

	tests := []struct {
		name   string
		header http.Header
		body   []byte
		opt    VerifyOptions
		want   error
	}{
		{"valid", hdr(HeaderSignature256, sig), metaBody, VerifyOptions{}, nil},
		{"missing header", http.Header{}, metaBody, VerifyOptions{}, ErrSignatureMissing},
		{"wrong prefix", hdr(HeaderSignature256, "sha1="+strings.TrimPrefix(sig, "sha256=")), metaBody, VerifyOptions{}, ErrSignatureMalformed},
		{"no prefix", hdr(HeaderSignature256, strings.TrimPrefix(sig, "sha256=")), metaBody, VerifyOptions{}, ErrSignatureMalformed},
		{"upper-case hex is the same MAC", hdr(HeaderSignature256, "sha256="+strings.ToUpper(strings.TrimPrefix(sig, "sha256="))), metaBody, VerifyOptions{}, nil},
		{"truncated", hdr(HeaderSignature256, sig[:len(sig)-2]), metaBody, VerifyOptions{}, ErrSignatureMismatch},
		{"odd length", hdr(HeaderSignature256, sig[:len(sig)-1]), metaBody, VerifyOptions{}, ErrSignatureMalformed},
		{"not hex", hdr(HeaderSignature256, "sha256=zz"+sig[9:]), metaBody, VerifyOptions{}, ErrSignatureMalformed},
		{"wrong secret", hdr(HeaderSignature256, Sign([]byte("other"), metaBody)), metaBody, VerifyOptions{}, ErrSignatureMismatch},
		{"one byte flipped", hdr(HeaderSignature256, sig), flipped, VerifyOptions{}, ErrSignatureMismatch},
		{"body re-encoded after parsing", hdr(HeaderSignature256, sig), reencoded, VerifyOptions{}, ErrSignatureMismatch},
		{"sha1 only, not allowed", hdr(HeaderSignatureSHA1, SignSHA1(secret, metaBody)), metaBody, VerifyOptions{}, ErrSignatureMissing},
		{"sha1 only, allowed", hdr(HeaderSignatureSHA1, SignSHA1(secret, metaBody)), metaBody, VerifyOptions{AllowSHA1: true}, nil},
		{"sha1 wrong, allowed", hdr(HeaderSignatureSHA1, SignSHA1([]byte("x"), metaBody)), metaBody, VerifyOptions{AllowSHA1: true}, ErrSignatureMismatch},
		{"sha256 wins over a good sha1", http.Header{HeaderSignature256: {"sha256=00"}, HeaderSignatureSHA1: {SignSHA1(secret, metaBody)}}, metaBody, VerifyOptions{AllowSHA1: true}, ErrSignatureMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.header, tt.body, secret, tt.opt)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			// A Verifier answers the same, each time (its HMACs reused).
			v := NewVerifier(secret, tt.opt)
			for i := range 3 {
				if got := v.Verify(tt.header, tt.body); (got == nil) != (err == nil) || got != nil && got.Error() != err.Error() {
					t.Fatalf("Verifier, time %d: %v, Verify %v", i+1, got, err)
				}
			}
		})
	}
	if string(reencoded) == string(metaBody) {
		t.Fatal("re-encoding kept Meta's escapes; the test above proves nothing")
	}
}

func hdr(k, v string) http.Header {
	h := http.Header{}
	h.Set(k, v)
	return h
}

func TestMarshalLikeMeta(t *testing.T) {
	got, err := MarshalLikeMeta(map[string]string{"t": "äöå <b>&</b> 😀 https://x/y \\/ \u2028"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"t":"\u00e4\u00f6\u00e5 <b>&<\/b> \ud83d\ude00 https:\/\/x\/y \\\/ \u2028"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil || back["t"] != "äöå <b>&</b> 😀 https://x/y \\/ \u2028" {
		t.Fatalf("round trip: %q, %v", back["t"], err)
	}
}

// Events forwarded as Meta sent them already carry escapes: they must
// survive a second pass unchanged.
func TestEscapeLikeMetaKeepsEscapes(t *testing.T) {
	in := `{"t":"https:\/\/x\/y \u00e9 \\ \" /é"}`
	want := `{"t":"https:\/\/x\/y \u00e9 \\ \" \/\u00e9"}`
	if got := string(EscapeLikeMeta([]byte(in))); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var a, b map[string]string
	if json.Unmarshal([]byte(in), &a) != nil || json.Unmarshal([]byte(want), &b) != nil || a["t"] != b["t"] {
		t.Fatalf("value changed: %q vs %q", a["t"], b["t"])
	}
}

func TestAppSecretProof(t *testing.T) {
	// HMAC-SHA256(key "secret", message "token"), computed with Python's hmac.
	const want = "e941110e3d2bfe82621f0e3e1434730d7305d106c5f68c87165d0b27a4611a4a"
	if got := AppSecretProof("secret", "token"); got != want {
		t.Fatalf("proof %q, want %q", got, want)
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{
		"7123456789012345": true, "1": true, "12345678901234567890": true,
		"": false, "123456789012345678901": false, "12a": false, "71234\x00": false, "-1": false, "1/2": false, " 1": false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v", s, got)
		}
	}
}
