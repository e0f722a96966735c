package messenger

import (
	"net/http"
	"strings"
	"testing"
)

// A ~1 KB message webhook, as Meta sends it.
var benchBody = []byte(`{"object":"page","entry":[{"id":"100200300400500","time":1718000000123,"messaging":[{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1718000000000,"message":{"mid":"m_AbCdEf0123456789_text","text":"` +
	strings.Repeat("Hi, I need help with my order \u00e9 ", 25) + `"}}]}]}`)

func BenchmarkVerify(b *testing.B) {
	secret := []byte("app-secret")
	h := http.Header{}
	h.Set(HeaderSignature256, Sign(secret, benchBody))
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(h, benchBody, secret, VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifier: Verify with the HMACs of one secret kept, as
// ingress verifies each hosted app's webhooks.
func BenchmarkVerifier(b *testing.B) {
	secret := []byte("app-secret")
	h := http.Header{}
	h.Set(HeaderSignature256, Sign(secret, benchBody))
	v := NewVerifier(secret, VerifyOptions{})
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(h, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEnvelope(b *testing.B) {
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := ParseEnvelope(benchBody); err != nil {
			b.Fatal(err)
		}
	}
}
