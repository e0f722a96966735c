package tlsserve_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/orchestrator/tlsserve"
	"github.com/batonhq/baton/orchestrator/tlsserve/tlstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const every = 5 * time.Second

// serveTLS serves a tiny handler with src's TLS on a loopback port until
// the test ends, and returns the address.
func serveTLS(t *testing.T, src *tlsserve.Source) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok ", r.Proto) }),
		TLSConfig: src.Config(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: quietLog()}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

// quietLog keeps the handshake failures a test provokes on purpose out of
// its output.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// servedCN is the common name of the certificate a new connection gets.
func servedCN(t *testing.T, addr string, ca *tlstest.CA) string {
	t.Helper()
	c, err := tlstest.Served(addr, "127.0.0.1", ca.Pool())
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c.Subject.CommonName
}

type filesFixture struct {
	ca    *tlstest.CA
	dir   string
	clock *clock.Manual
	logs  *observer.ObservedLogs
	addr  string
}

func newFilesFixture(t *testing.T) *filesFixture {
	f := &filesFixture{ca: tlstest.NewCA(t), dir: t.TempDir(), clock: clock.NewManual(time.Now())}
	certFile, keyFile := f.ca.WriteFiles(t, f.dir, "first", "127.0.0.1")
	core, logs := observer.New(zapcore.InfoLevel)
	f.logs = logs
	src, err := tlsserve.New(tlsserve.Settings{CertFile: certFile, KeyFile: keyFile}, tlsserve.Options{Log: zap.New(core), Clock: f.clock, CheckEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	f.addr = serveTLS(t, src)
	return f
}

func (f *filesFixture) cert() string { return filepath.Join(f.dir, "cert.pem") }
func (f *filesFixture) key() string  { return filepath.Join(f.dir, "key.pem") }

// New connections see a renewed pair once the check interval has passed,
// without a restart; connections before that keep the pair in memory.
func TestFilesReloadWhenChanged(t *testing.T) {
	f := newFilesFixture(t)
	if cn := servedCN(t, f.addr, f.ca); cn != "first" {
		t.Fatalf("served %q", cn)
	}
	f.ca.WriteFiles(t, f.dir, "second", "127.0.0.1")
	if cn := servedCN(t, f.addr, f.ca); cn != "first" {
		t.Fatalf("served %q before the check interval passed", cn)
	}
	f.clock.Advance(every)
	if cn := servedCN(t, f.addr, f.ca); cn != "second" {
		t.Fatalf("served %q after the files changed, want second", cn)
	}
	if n := f.logs.FilterMessage("tls certificate reloaded").Len(); n != 1 {
		t.Fatalf("%d reload logs, want 1: %v", n, f.logs.All())
	}
	// Unchanged files are not loaded again.
	f.clock.Advance(every)
	servedCN(t, f.addr, f.ca)
	if n := f.logs.FilterMessage("tls certificate reloaded").Len(); n != 1 {
		t.Fatalf("%d reload logs after no change, want 1", n)
	}
}

// A replacement that does not load leaves the old certificate in service,
// is logged once (with the files, never the key), and is tried again at
// each check: once fixed, it is served.
func TestFilesBrokenReplacementKeepsOld(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(f *filesFixture, t *testing.T)
		want   string
	}{
		{"key is not PEM", func(f *filesFixture, t *testing.T) { tlstest.WriteFile(t, f.key(), []byte("not a key")) }, "failed to find any PEM data in key input"},
		{"cert is empty", func(f *filesFixture, t *testing.T) { tlstest.WriteFile(t, f.cert(), nil) }, "failed to find any PEM data in certificate input"},
		{"half-written renewal: new cert, old key", func(f *filesFixture, t *testing.T) {
			c, _ := f.ca.Issue(t, "half", "127.0.0.1")
			tlstest.WriteFile(t, f.cert(), c)
		}, "private key does not match public key"},
		{"key file removed", func(f *filesFixture, t *testing.T) {
			if err := os.Remove(f.key()); err != nil {
				t.Fatal(err)
			}
		}, "tls: key_file: open "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilesFixture(t)
			_, oldKey := readPair(t, f)
			tc.break_(f, t)
			for range 3 { // three checks, one log
				f.clock.Advance(every)
				if cn := servedCN(t, f.addr, f.ca); cn != "first" {
					t.Fatalf("served %q, want the old certificate", cn)
				}
			}
			errs := f.logs.FilterLevelExact(zapcore.ErrorLevel).All()
			if len(errs) != 1 {
				t.Fatalf("%d error logs, want 1: %v", len(errs), f.logs.All())
			}
			got := fmt.Sprint(errs[0].Message, errs[0].ContextMap())
			if !strings.Contains(got, tc.want) || !strings.Contains(got, "previous certificate stays in service") {
				t.Fatalf("log %q, want %q", got, tc.want)
			}
			if strings.Contains(got, string(oldKey[40:80])) {
				t.Fatalf("key material in the log: %s", got)
			}
			// Fixed: the next check serves the new pair.
			f.ca.WriteFiles(t, f.dir, "fixed", "127.0.0.1")
			f.clock.Advance(every)
			if cn := servedCN(t, f.addr, f.ca); cn != "fixed" {
				t.Fatalf("served %q after the fix, want fixed", cn)
			}
		})
	}
}

func readPair(t *testing.T, f *filesFixture) (certPEM, keyPEM []byte) {
	c, err := os.ReadFile(f.cert())
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(f.key())
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// Baton does not start on a pair that does not load.
func TestFilesFirstLoadFails(t *testing.T) {
	ca, dir := tlstest.NewCA(t), t.TempDir()
	certFile, keyFile := ca.WriteFiles(t, dir, "first", "127.0.0.1")
	otherCert, _ := ca.Issue(t, "other", "127.0.0.1")
	mismatched := filepath.Join(dir, "other.pem")
	tlstest.WriteFile(t, mismatched, otherCert)
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"no cert file", filepath.Join(dir, "missing.pem"), keyFile, "tls: cert_file: open " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{"no key file", certFile, filepath.Join(dir, "missing.pem"), "tls: key_file: open " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{"key of another cert", mismatched, keyFile, "tls: " + mismatched + " and " + keyFile + ": tls: private key does not match public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsserve.New(tlsserve.Settings{CertFile: tc.cert, KeyFile: tc.key}, tlsserve.Options{})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}

// TLS 1.2 at least: a client that offers only 1.1 is refused, even where
// GODEBUG lowers Go's own default (tls10server=1).
func TestFilesMinimumTLS12(t *testing.T) {
	t.Setenv("GODEBUG", "tls10server=1")
	f := newFilesFixture(t)
	for _, tc := range []struct {
		max uint16
		ok  bool
	}{{tls.VersionTLS11, false}, {tls.VersionTLS12, true}, {tls.VersionTLS13, true}} {
		conn, err := tls.Dial("tcp", f.addr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tc.max})
		if (err == nil) != tc.ok {
			t.Fatalf("max version %x: err %v", tc.max, err)
		}
		if err == nil {
			conn.Close()
		}
	}
	// And HTTP works over it, h2 included.
	c := tlstest.Client(t, f.ca.Pool())
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "https://"+f.addr+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Fatalf("proto %s", resp.Proto)
	}
}

// Handshakes on many connections at once while the files change: each
// gets a whole pair, old or new, and one check reads the files at a time
// (run with -race).
func TestFilesConcurrentHandshakes(t *testing.T) {
	ca, dir := tlstest.NewCA(t), t.TempDir()
	certFile, keyFile := ca.WriteFiles(t, dir, "gen0", "127.0.0.1")
	clk := clock.NewManual(time.Now())
	f, err := tlsserve.LoadFiles(certFile, keyFile, tlsserve.Options{Clock: clk, CheckEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	halt := sync.OnceFunc(func() { close(stop) })
	t.Cleanup(halt) // a failed check still stops the handshakes
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				c, err := f.GetCertificate(&tls.ClientHelloInfo{})
				if err != nil || c == nil || c.Leaf == nil {
					errs <- fmt.Errorf("got %v %v", c, err)
					return
				}
			}
		}()
	}
	for i := 1; i <= 5; i++ {
		ca.WriteFiles(t, dir, fmt.Sprint("gen", i), "127.0.0.1")
		clk.Advance(every)
		// A handshake after the interval loads generation i; this one may
		// find another's check under way, so look until one has finished.
		want, deadline := fmt.Sprint("gen", i), time.Now().Add(5*time.Second)
		for c, _ := f.GetCertificate(&tls.ClientHelloInfo{}); c.Leaf.Subject.CommonName != want; c, _ = f.GetCertificate(&tls.ClientHelloInfo{}) {
			if time.Now().After(deadline) {
				t.Fatalf("generation %d: still served %s", i, c.Leaf.Subject.CommonName)
			}
			runtime.Gosched()
		}
	}
	halt()
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
