package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/config"
)

// notifyBuffer is a log destination the test can wait on.
type notifyBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (b *notifyBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (b *notifyBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer holds s.
func (b *notifyBuffer) waitFor(t *testing.T, s string, done <-chan error) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for !strings.Contains(b.String(), s) {
		select {
		case <-b.wrote:
		case err := <-done:
			t.Fatalf("serve returned %v before %q; logs:\n%s", err, s, b.String())
		case <-deadline:
			t.Fatalf("no %q in logs:\n%s", s, b.String())
		}
	}
}

// jsonLine is the log line with this message, decoded.
func jsonLine(t *testing.T, logs, msg string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("no %q line in:\n%s", msg, logs)
	return nil
}

const serveYAML = `
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0", token_env: BATON_ADMIN_TOKEN}
data: %DATA%
graph: {url: "http://127.0.0.1:1"}
apps:
  - name: support-bot
    app_id: "512345678901234"
    secret_env: SUPPORT_BOT_SECRET
    verify_token_env: SUPPORT_BOT_VERIFY_TOKEN
    adapter: {type: http, url: "http://127.0.0.1:1/events", secret_env: SUPPORT_BOT_HOOK_SECRET}
  - name: page-inbox
    app_id: "263902037430900"
pages:
  - id: "100200300400500"
    mode: conversation_routing
    primary: support-bot
    secondary: [page-inbox]
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT_BOT}
`

// baton serve logs one line when it is ready (listeners, data file,
// counts, version) and one when it stopped, with how long the drain took,
// its unit in the value.
func TestServeLogsStartAndStop(t *testing.T) {
	for k, v := range map[string]string{"BATON_ADMIN_TOKEN": "admin-token-0123456789", "SUPPORT_BOT_SECRET": "app-secret",
		"SUPPORT_BOT_VERIFY_TOKEN": "verify", "SUPPORT_BOT_HOOK_SECRET": "hook-secret-0123456789", "PAGE_TOKEN_SUPPORT_BOT": "PT"} {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "baton.db")
	path := filepath.Join(dir, "baton.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(serveYAML, "%DATA%", data, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &notifyBuffer{wrote: make(chan struct{}, 1)}
	var stdout bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, []string{"-config", path}, &stdout, stderr) }()
	stderr.waitFor(t, `"baton started"`, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v; logs:\n%s", err, stderr.String())
	}
	logs := stderr.String()
	start := jsonLine(t, logs, "baton started")
	for k, want := range map[string]any{"data": data, "pages": 1.0, "apps": 2.0, "level": "info"} {
		if start[k] != want {
			t.Errorf("baton started: %s = %v, want %v", k, start[k], want)
		}
	}
	for _, k := range []string{"public", "admin", "version", "startup"} {
		if s, _ := start[k].(string); s == "" {
			t.Errorf("baton started: no %s in %v", k, start)
		}
	}
	stop := jsonLine(t, logs, "baton stopped")
	if d, _ := stop["drain"].(string); !durationWithUnit.MatchString(d) {
		t.Errorf("baton stopped: drain %v, want a duration with its unit", stop["drain"])
	}
}

var durationWithUnit = regexp.MustCompile(`^[0-9.]+(ns|µs|ms|s|m|h)`)

// The logger prints every zap.Duration with its unit.
func TestLoggerDurationsCarryUnits(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log, err := buildLogger(config.Log{Level: "info", Format: format}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("x", zap.Duration("backoff", 1500*time.Millisecond), zap.Duration("drain", 250*time.Millisecond))
		if out := buf.String(); !strings.Contains(out, "1.5s") || !strings.Contains(out, "250ms") {
			t.Errorf("%s: durations without units: %s", format, out)
		}
	}
}

// A duration logged as a plain number must say its unit in its name. The
// rule is zap.Duration; this catches an integer or float field named like
// a duration that does not end in _ms or _seconds.
func TestNoBareNumberDurationFields(t *testing.T) {
	field := regexp.MustCompile(`zap\.(Int|Int64|Uint64|Float64)\("([a-z0-9_]+)"`)
	timeWord := regexp.MustCompile(`(^|_)(duration|elapsed|latency|timeout|backoff|wait|delay|drain|age|lag|uptime|in|after)(_|$)`)
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range field.FindAllSubmatch(b, -1) {
			if name := string(m[2]); timeWord.MatchString(name) && !strings.HasSuffix(name, "_ms") && !strings.HasSuffix(name, "_seconds") {
				t.Errorf("%s: log field %q is a number without its unit: use zap.Duration", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
