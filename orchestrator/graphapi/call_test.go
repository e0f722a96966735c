package graphapi

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/topology"
)

const testAPIToken = "bot-api-token-0123456789"

type nopAdapter struct{ adapters.Adapter }

// mustEndpoint is an Endpoint on a one-app, one-page topology: enough
// for readCall, which needs the topology alone.
func mustEndpoint(tb testing.TB) *Endpoint {
	tb.Helper()
	env := map[string]string{"ADMIN": "admin-token-0123456789", "SECRET": "s", "VERIFY": "v", "HOOK": "h", "PT1": "p1", "BOT_API": testAPIToken}
	cfg, err := config.Parse("t.yaml", []byte(`
admin: {token_env: ADMIN}
apps:
  - name: bot
    app_id: "512345678901234"
    secret_env: SECRET
    verify_token_env: VERIFY
    token_env: BOT_API
    adapter: {type: http, url: "http://127.0.0.1:9001/events", secret_env: HOOK}
pages:
  - id: "100200300400500"
    primary: bot
    tokens: {bot: {token_env: PT1}}
`), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		tb.Fatal(err)
	}
	top, err := topology.New(cfg, map[string]adapters.Adapter{"bot": nopAdapter{}})
	if err != nil {
		tb.Fatal(err)
	}
	return New(Deps{Topology: top})
}

// upload is a multipart body: an access_token part first when tok is
// set, then a file of size bytes.
func upload(tok string, size int) (contentType string, body []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if tok != "" {
		_ = mw.WriteField("access_token", tok)
	}
	fw, _ := mw.CreateFormFile("filedata", "cat.png")
	_, _ = fw.Write(bytes.Repeat([]byte{'x'}, size))
	_ = mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// A body over maxGraphBody is read on only for an upload by a caller
// known by then: a stranger makes Baton hold no more than 1 MiB.
func TestReadCallBodyLimits(t *testing.T) {
	g := mustEndpoint(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, gerr := g.readCall(w, r)
		if gerr != nil {
			w.WriteHeader(gerr.HTTPStatus)
			fmt.Fprintf(w, "%d %s", gerr.Code, gerr.Message)
			return
		}
		fmt.Fprintf(w, "%s %d", c.app.Name, len(c.form.data))
	}))
	defer srv.Close()
	big := 2 << 20
	for _, c := range []struct {
		name, query, tok string
		multipart        bool
		size             int
		status           int
		want             string
	}{
		{"a stranger's upload, no token before the file", "", "", true, big, 413, "needs its access_token first"},
		{"a token part before the file", "", testAPIToken, true, big, 200, "bot "},
		{"a wrong token part before the file", "", "not-a-token-0123456789", true, big, 400, "190 Invalid OAuth"},
		{"the token in the query", "?access_token=" + testAPIToken, "", true, big, 200, "bot "},
		{"a small upload, the token in its part", "", testAPIToken, true, 1000, 200, "bot "},
		{"over the upload limit", "?access_token=" + testAPIToken, "", true, maxUploadBody, 413, "body over"},
		{"JSON over 1 MiB", "?access_token=" + testAPIToken, "", false, big, 413, "body over"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct, body := upload(c.tok, c.size)
			if !c.multipart {
				ct, body = "application/json", []byte(`{"x":"`+strings.Repeat("x", c.size)+`"}`)
			}
			resp, err := http.Post(srv.URL+c.query, ct, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || !strings.Contains(string(got), c.want) {
				t.Fatalf("%d %.200s, want %d %q", resp.StatusCode, got, c.status, c.want)
			}
		})
	}
}

// A known bot's upload may take longer than the listener's read timeout,
// which is sized for 1 MiB: the deadline moves for it.
func TestReadCallUploadOutlastsReadTimeout(t *testing.T) {
	g := mustEndpoint(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, gerr := g.readCall(w, r); gerr != nil {
			http.Error(w, gerr.Message, gerr.HTTPStatus)
		}
	}))
	const readTimeout = 200 * time.Millisecond
	srv.Config.ReadTimeout = readTimeout
	srv.Start()
	defer srv.Close()
	ct, body := upload("", 2<<20)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(body[:len(body)/2])
		// A slow link: the rest comes after the listener's read timeout.
		// The passing time is what is tested, so a timer, not a signal.
		time.Sleep(2 * readTimeout)
		_, _ = pw.Write(body[len(body)/2:])
		_ = pw.Close()
	}()
	resp, err := http.Post(srv.URL+"?access_token="+testAPIToken, ct, pr)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("slow upload: %d %s", resp.StatusCode, got)
	}
}
