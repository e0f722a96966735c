package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// child runs the baton binary with args and waits until probe answers
// 200; its output goes to the file log in the lab.
func (l *lab) child(ctx context.Context, args []string, env []string, probe, log string) (*exec.Cmd, error) {
	logPath := filepath.Join(l.dir, log)
	cmd := exec.Command(l.self, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	logf.Close() // the child has its own copy
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, err := client.Get(probe); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop(cmd)
	b, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("%s did not start: %s", args[0], b)
}

// serve starts `baton serve` on cfgPath and waits until its admin
// listener adm is ready.
func (l *lab) serve(ctx context.Context, cfgPath, adm string) (*exec.Cmd, error) {
	return l.child(ctx, []string{"serve", "-config", cfgPath}, childEnv(), "http://"+adm+"/readyz", "baton.log")
}

// stop ends a child with SIGTERM, and SIGKILL if it takes over 15 s.
func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// childEnv is the environment of Baton and the baseline: the secrets the
// bench config names, and the Go runtime's knobs, which pass through so
// that their effect can be measured: GOGC=400 baton bench.
func childEnv() []string {
	env := []string{secretEnv + "=" + appSecret, "BENCH_ADMIN=" + adminToken, "BENCH_VERIFY=x", "BENCH_HOOK=x", "BENCH_TOKEN=x"}
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// adminToken is BENCH_ADMIN in childEnv.
const adminToken = "bench-admin-token-0123"

func serveLocal(h http.Handler) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// target is the Baton a run measures.
type target struct {
	BotURL     string // the recording bot
	SlowURL    string // a second, slow bot, or empty
	Conns      int    // delivery concurrency per bot
	CommitWait time.Duration
	Profile    string // write CPU and allocation profiles of the run here (and .allocs), or nothing
	// MaxAttempts is delivery.max_attempts (0: the default): a backlog's
	// bot is down longer than the default allows.
	MaxAttempts int
	// Adapter is the bench bot's adapter type (default http); Batch its
	// batch setting as YAML ("{max: 100}"), or empty for none.
	Adapter, Batch string
}

// writeConfig writes a baton.yaml into dir for one hosted bench app on
// every page, with the bot at t.BotURL, and when t.SlowURL is set a second
// hosted app that asks for standby copies, as a slow bot. It returns the
// path and the public and admin addresses.
func writeConfig(dir, data string, pageIDs []string, t target) (cfgPath, public, admin string, err error) {
	pub, err := freeAddr()
	if err != nil {
		return "", "", "", err
	}
	adm, err := freeAddr()
	if err != nil {
		return "", "", "", err
	}
	var pages strings.Builder
	for _, p := range pageIDs {
		if t.SlowURL != "" {
			fmt.Fprintf(&pages, "  - {id: %q, primary: bench-bot, secondary: [slow-bot], tokens: {bench-bot: {token_env: BENCH_TOKEN}, slow-bot: {token_env: BENCH_TOKEN}}}\n", p)
			continue
		}
		fmt.Fprintf(&pages, "  - {id: %q, primary: bench-bot, tokens: {bench-bot: {token_env: BENCH_TOKEN}}}\n", p)
	}
	slowApp := ""
	if t.SlowURL != "" {
		slowApp = fmt.Sprintf(`  - name: slow-bot
    app_id: "623456789012345"
    secret_env: BENCH_SECRET
    verify_token_env: BENCH_VERIFY
    adapter: {type: http, url: %q, secret_env: BENCH_HOOK, standby: true}
`, t.SlowURL)
	}
	maxAttempts := ""
	if t.MaxAttempts > 0 {
		maxAttempts = fmt.Sprintf(", max_attempts: %d", t.MaxAttempts)
	}
	adapter := t.Adapter
	if adapter == "" {
		adapter = "http"
	}
	if t.Batch != "" {
		adapter += ", batch: " + t.Batch
	}
	cfg := fmt.Sprintf(`listen: %q
admin: {listen: %q, token_env: BENCH_ADMIN}
data: %q
graph: {url: "http://127.0.0.1:1"}
log: {level: error}
webhooks: {commit_wait: %s}
delivery: {concurrency: %d, backoff: 50ms, max_backoff: 1s%s}
apps:
  - name: bench-bot
    app_id: %q
    secret_env: BENCH_SECRET
    verify_token_env: BENCH_VERIFY
    adapter: {type: %s, url: %q, secret_env: BENCH_HOOK}
%spages:
%s`, pub, adm, data, t.CommitWait, t.Conns, maxAttempts, botAppID, adapter, t.BotURL, slowApp, pages.String())
	cfgPath = filepath.Join(dir, "baton.yaml")
	return cfgPath, pub, adm, os.WriteFile(cfgPath, []byte(cfg), 0o600)
}
