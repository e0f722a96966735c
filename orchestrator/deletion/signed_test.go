package deletion

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	secret = []byte("support-app-secret")
	now    = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
)

// signRaw signs payload JSON as Meta does, with the padding of pad.
func signRaw(key []byte, payload string, pad bool) string {
	enc := base64.RawURLEncoding
	if pad {
		enc = base64.URLEncoding
	}
	p := enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(p))
	return enc.EncodeToString(mac.Sum(nil)) + "." + p
}

func TestParse(t *testing.T) {
	good := SignedRequest{Algorithm: "HMAC-SHA256", IssuedAt: now.Add(-time.Minute).Unix(), UserID: "1234567890123456"}
	signed := Sign(secret, good)
	sigPart, payloadPart, _ := strings.Cut(signed, ".")
	for _, tc := range []struct {
		name string
		raw  string
		want error // nil: accepted
	}{
		{"as Meta signs it", signed, nil},
		{"padded parts", signRaw(secret, `{"algorithm":"HMAC-SHA256","issued_at":`+itoa(good.IssuedAt)+`,"user_id":"1234567890123456"}`, true), nil},
		{"algorithm in lower case", Sign(secret, SignedRequest{Algorithm: "hmac-sha256", IssuedAt: good.IssuedAt, UserID: "1"}), nil},
		{"another app's secret", Sign([]byte("billing-app-secret"), good), ErrSignature},
		{"payload changed after signing", sigPart + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"algorithm":"HMAC-SHA256","issued_at":1,"user_id":"666"}`)), ErrSignature},
		{"signature cut short", sigPart[:10] + "." + payloadPart, ErrSignature},
		{"another algorithm", Sign(secret, SignedRequest{Algorithm: "none", IssuedAt: good.IssuedAt, UserID: "1"}), ErrAlgorithm},
		{"no algorithm", Sign(secret, SignedRequest{IssuedAt: good.IssuedAt, UserID: "1"}), ErrAlgorithm},
		{"issued two hours ago", Sign(secret, SignedRequest{Algorithm: "HMAC-SHA256", IssuedAt: now.Add(-2 * time.Hour).Unix(), UserID: "1"}), ErrExpired},
		{"issued in an hour", Sign(secret, SignedRequest{Algorithm: "HMAC-SHA256", IssuedAt: now.Add(time.Hour).Unix(), UserID: "1"}), ErrMalformed},
		{"no issued_at", Sign(secret, SignedRequest{Algorithm: "HMAC-SHA256", UserID: "1"}), ErrMalformed},
		{"user id not digits", Sign(secret, SignedRequest{Algorithm: "HMAC-SHA256", IssuedAt: good.IssuedAt, UserID: "1/../2"}), ErrMalformed},
		{"no user id", Sign(secret, SignedRequest{Algorithm: "HMAC-SHA256", IssuedAt: good.IssuedAt}), ErrMalformed},
		{"signed payload not JSON", signRaw(secret, `not json`, false), ErrMalformed},
		{"no dot", sigPart, ErrMalformed},
		{"three parts", signed + ".x", ErrMalformed},
		{"empty signature", "." + payloadPart, ErrMalformed},
		{"not base64url", "!!!." + payloadPart, ErrMalformed},
		{"huge", strings.Repeat("a", maxSignedRequest) + "." + payloadPart, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sr, err := Parse(tc.raw, secret, now, time.Hour)
			if tc.want == nil {
				if err != nil || sr.UserID == "" {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if sr != (SignedRequest{}) {
				t.Fatalf("a refused request returned its payload %+v", sr)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// FuzzParse: no input makes Parse panic, and whatever it accepts was
// signed with the secret and names a Meta id.
func FuzzParse(f *testing.F) {
	f.Add(Sign(secret, SignedRequest{Algorithm: "HMAC-SHA256", IssuedAt: now.Unix(), UserID: "42"}))
	f.Add(signRaw(secret, `{"algorithm":"HMAC-SHA256","issued_at":1764590400,"user_id":"42"}`, true))
	f.Add("a.b")
	f.Add(".")
	f.Add("====.====")
	f.Fuzz(func(t *testing.T, raw string) {
		sr, err := Parse(raw, secret, now, time.Hour)
		if err != nil {
			return
		}
		sigPart, payloadPart, _ := strings.Cut(raw, ".")
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(payloadPart))
		sig, _ := decodePart(sigPart)
		if !hmac.Equal(sig, mac.Sum(nil)) {
			t.Fatalf("accepted a request not signed with the secret: %q", raw)
		}
		if sr.UserID == "" || strings.Trim(sr.UserID, "0123456789") != "" {
			t.Fatalf("accepted user id %q", sr.UserID)
		}
	})
}
