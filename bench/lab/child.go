package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Child runs the baton binary with args and waits until probe answers
// 200; its output goes to the file log in the lab.
func (l *Lab) Child(ctx context.Context, args []string, env []string, probe, log string) (*exec.Cmd, error) {
	logPath := filepath.Join(l.Dir, log)
	cmd := exec.Command(l.Self, args...)
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
	Stop(cmd)
	b, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("%s did not start: %s", args[0], b)
}

// Serve starts `baton serve` on cfgPath and waits until its admin
// listener adm is ready.
func (l *Lab) Serve(ctx context.Context, cfgPath, adm string) (*exec.Cmd, error) {
	return l.Child(ctx, []string{"serve", "-config", cfgPath}, Env(), "http://"+adm+"/readyz", "baton.log")
}

// Stop ends a child with SIGTERM, and SIGKILL if it takes over 15 s.
func Stop(cmd *exec.Cmd) {
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

// Env is the environment of Baton and the baseline: the secrets the
// bench config names, and the Go runtime's knobs, which pass through so
// that their effect can be measured: GOGC=400 baton bench.
func Env() []string {
	env := []string{SecretEnv + "=" + AppSecret, ClusterSecretEnv + "=" + clusterSecret, "BENCH_ADMIN=" + AdminToken, "BENCH_VERIFY=x", "BENCH_HOOK=x", "BENCH_TOKEN=x"}
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// AdminToken is BENCH_ADMIN in Env.
const AdminToken = "bench-admin-token-0123"

// ServeLocal serves h on a loopback port of this process, until the
// returned func is called.
func ServeLocal(h http.Handler) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }, nil
}

// FreeAddr is a loopback address no one listened on a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
