package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPlatformCommand runs `baton platform` with the README's example
// config on a free port and talks to it over HTTP, then stops it as
// Ctrl-C would.
func TestPlatformCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		cfg := filepath.Join("..", "..", "examples", "platform", "platform.yaml")
		done <- run(ctx, []string{"platform", "-config", cfg, "-listen", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()

	// The banner's first line names the address: the signal that it serves.
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("no banner; exit %d", <-done)
	}
	base := regexp.MustCompile(`http://[0-9.:]+`).FindString(sc.Text())
	if base == "" {
		t.Fatalf("banner %q has no URL", sc.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	resp, err := http.Post(base+"/_platform/pages/100200300400500/users/7123456789012345/messages", "application/json", strings.NewReader(`{"text":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("user message: %s", resp.Status)
	}
	resp, err = http.Get(base + "/_platform/pages/100200300400500/threads/7123456789012345")
	if err != nil {
		t.Fatal(err)
	}
	var th struct {
		Messages []struct{ Text string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&th)
	resp.Body.Close()
	if len(th.Messages) != 1 || th.Messages[0].Text != "hello" {
		t.Fatalf("thread %+v", th)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestUsageErrors(t *testing.T) {
	var stderr strings.Builder
	if code := run(context.Background(), []string{"platform"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "-config is required") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"nope"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "nope"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"platform", "-config", "missing.yaml"}, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "missing.yaml") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestCheckCommand(t *testing.T) {
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"check", "-config", filepath.Join("..", "..", "config", "testdata", "unknown_key.yml")}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `unknown_key.yml:7: apps[0].adaptr: unknown field "adaptr"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
