package forward

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzInternalCheck: whatever a stranger puts in the forwarding headers,
// the internal listener's check neither panics nor lets in a request that
// the cluster secret did not sign.
func FuzzInternalCheck(f *testing.F) {
	fw, err := New(Options{Self: "r1-0123456789abcdef", Secret: []byte("cluster-secret-0123456789"), Owners: ownersFunc(func(int) (string, string, bool) { return "", "", false })})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	fw.now = func() time.Time { return now }
	good := httptest.NewRequest(http.MethodPost, "/v1/threads/1/2/pass", nil)
	fw.sign(good, "10.0.0.9:4242", []byte(`{}`), now)
	f.Add(good.Method, good.RequestURI, good.Header.Get(HeaderSignature), good.Header.Get(HeaderTimestamp),
		good.Header.Get(HeaderForwardedBy), good.Header.Get(HeaderClient), good.Header.Get(HeaderBodySHA256))
	f.Add("GET", "/admin/cluster", "zz", "-1", "", "", "")
	f.Add("POST", "/v1/threads/1/2/pass", strings.Repeat("ab", 32), "1800000000", "r2", "x", "")
	f.Fuzz(func(t *testing.T, method, uri, sig, ts, by, client, bodyHash string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Method, r.RequestURI = method, uri
		for k, v := range map[string]string{HeaderSignature: sig, HeaderTimestamp: ts, HeaderForwardedBy: by, HeaderClient: client, HeaderBodySHA256: bodyHash} {
			r.Header[k] = []string{v}
		}
		_, _, reason := fw.check(r)
		if reason != "" {
			return
		}
		// Let in: then it is exactly what the secret signed.
		want := fw.mac(method, uri, ts, client, by, bodyHash)
		if !strings.EqualFold(sig, hexOf(want)) {
			t.Fatalf("let in with signature %q, which the secret did not make", sig)
		}
	})
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
