package inbox

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Meta did not answer Baton's pass: Done fails after the closing message
// went, and the agent presses Done again. The person is told goodbye
// once.
func TestInboxDoneAgainDoesNotRepeatTheClosingMessage(t *testing.T) {
	f := &fixture{t: t, baton: &fakeBaton{}, data: filepath.Join(t.TempDir(), "inbox.db")}
	var passFails atomic.Int32
	passFails.Store(1)
	bs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/pass") && passFails.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":{"code":"graph_unavailable","message":"Meta did not answer","retryable":true}}`)
			return
		}
		f.baton.ServeHTTP(w, r)
	}))
	t.Cleanup(bs.Close)
	f.start(options(bs.URL, f.data, mustHash(t)))
	f.deliver("dlv_1", "messaging", "inbox", pass("asked", time.Now().UnixMilli()))
	ben := f.signIn("ben")
	if code := ben.do("POST", "/api/conversations/100/7123/done", `{}`, nil); code != http.StatusBadGateway {
		t.Fatalf("done while Meta does not answer: %d", code)
	}
	var out map[string]string
	if code := ben.do("POST", "/api/conversations/100/7123/done", `{}`, &out); code != 200 || out["owner"] != "faq-bot" {
		t.Fatalf("done again: %d %v", code, out)
	}
	sends := 0
	for _, c := range f.baton.Calls() {
		if strings.Contains(c, "/messages") {
			sends++
		}
	}
	if sends != 1 {
		t.Fatalf("the closing message went %d times, want once", sends)
	}
}
