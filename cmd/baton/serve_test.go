//go:build unix

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const reloadYAML = `
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0", token_env: TEST_ADMIN_TOKEN}
data: %q
graph: {url: "http://127.0.0.1:1"}
delivery: {backoff: %s}
apps:
  - name: support-bot
    app_id: "512345678901234"
    secret_env: TEST_APP_SECRET
    verify_token_env: TEST_VERIFY_TOKEN
    adapter: {type: http, url: "http://127.0.0.1:1/events", secret_env: TEST_HOOK_SECRET}
pages:
  - id: "100200300400500"
    primary: support-bot
    tokens: {support-bot: {token_env: TEST_PAGE_TOKEN}}
`

// baton serve reloads its config file on SIGHUP, a real signal to this
// process: a good file is applied, a bad one is logged problem by problem
// (file:line: field) while the running config goes on.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	for k, v := range map[string]string{"TEST_ADMIN_TOKEN": "admin-token-0123456789", "TEST_APP_SECRET": "app-secret", "TEST_VERIFY_TOKEN": "verify",
		"TEST_HOOK_SECRET": "hook-secret", "TEST_PAGE_TOKEN": "page-token"} {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "baton.yaml")
	write := func(y string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(reloadYAML, filepath.Join(dir, "baton.db"), "1s"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	logR, logW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-config", path}, outW, logW)
		outW.Close()
		logW.Close()
	}()
	lines := make(chan string, 1000)
	go func() {
		ls := bufio.NewScanner(logR)
		for ls.Scan() {
			lines <- ls.Text()
		}
		close(lines)
	}()
	// The banner names the admin address; it is printed once serve
	// listens, after it asked for SIGHUP.
	sc := bufio.NewScanner(outR)
	if !sc.Scan() {
		code := <-done
		for l := range lines {
			t.Log(l)
		}
		t.Fatalf("no banner; exit %d", code)
	}
	m := regexp.MustCompile(`admin API on ([0-9.:]+)`).FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("banner %q names no admin address", sc.Text())
	}
	admin := "http://" + m[1]
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	// logged waits for a log line with every one of words.
	logged := func(words ...string) string {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("serve stopped before logging %q", words)
				}
				all := true
				for _, w := range words {
					all = all && strings.Contains(l, w)
				}
				if all {
					return l
				}
			case <-timeout:
				t.Fatalf("no log line with %q in 15s", words)
			}
		}
	}
	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	write(fmt.Sprintf(reloadYAML, filepath.Join(dir, "baton.db"), "2s"))
	hup()
	if l := logged(`"config reloaded"`); !strings.Contains(l, `"changed":["delivery.backoff"]`) || !strings.Contains(l, `"pause"`) {
		t.Fatalf("reload logged %s", l)
	}

	bad := fmt.Sprintf(reloadYAML, filepath.Join(dir, "baton.db"), "2s")
	write(bad + "bogus: 1\n")
	hup()
	logged(`"config problem"`, fmt.Sprintf("%s:%d: bogus:", path, strings.Count(bad, "\n")+1))
	logged(`"config not reloaded, the running one goes on"`)

	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{`baton_config_reloads_total{result="applied"} 1`, `baton_config_reloads_total{result="invalid"} 1`} {
		if !strings.Contains(string(body), series) {
			t.Errorf("metrics lack %s", series)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
