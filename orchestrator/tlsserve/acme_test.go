package tlsserve_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/batonhq/baton/orchestrator/tlsserve"
	"github.com/batonhq/baton/orchestrator/tlsserve/tlstest"
)

const domain = "baton.example.test"

// acmeFixture is an ACME source whose cache already holds a certificate
// for domain, so that no CA is needed; the directory it would ask is a
// loopback server that fails the test if it is called at all.
type acmeFixture struct {
	ca        *tlstest.CA
	src       *tlsserve.Source
	addr      string // the TLS listener
	asked     chan string
	cacheDir  string
	directory string
}

func newACMEFixture(t *testing.T) *acmeFixture {
	f := &acmeFixture{ca: tlstest.NewCA(t), cacheDir: t.TempDir(), asked: make(chan string, 100)}
	dir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.asked <- r.Method + " " + r.URL.Path
		http.Error(w, "no CA in this test", http.StatusServiceUnavailable)
	}))
	t.Cleanup(dir.Close)
	f.directory = dir.URL + "/directory"
	// autocert's cache entry for a name is the name itself (ECDSA; RSA
	// would be name+"+rsa"): the PEM private key, then the certificate
	// chain (autocert.go, cachePut and cacheGet).
	certPEM, keyPEM := f.ca.Issue(t, "from the cache", domain)
	entry := append(append(keyPEM, certPEM...), f.ca.PEM...)
	if err := os.WriteFile(filepath.Join(f.cacheDir, domain), entry, 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := tlsserve.New(tlsserve.Settings{ACME: &tlsserve.ACME{Domains: []string{domain}, CacheDir: f.cacheDir,
		Email: "ops@example.test", DirectoryURL: f.directory, HTTPListen: "127.0.0.1:0"}}, tlsserve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.src = src
	f.addr = serveTLS(t, src)
	return f
}

func (f *acmeFixture) noCA(t *testing.T) {
	t.Helper()
	select {
	case r := <-f.asked:
		t.Fatalf("the ACME directory was asked: %s", r)
	default:
	}
}

// A connection with the domain's SNI gets the cached certificate; other
// names and none get no certificate, and nothing asks the CA for them.
func TestACMEServesCachedCertificate(t *testing.T) {
	f := newACMEFixture(t)
	c, err := tlstest.Served(f.addr, domain, f.ca.Pool())
	if err != nil {
		t.Fatalf("handshake as %s: %v", domain, err)
	}
	if c.Subject.CommonName != "from the cache" {
		t.Fatalf("served %q", c.Subject.CommonName)
	}
	for _, name := range []string{"other.example.test", "127.0.0.1"} {
		if _, err := tlstest.Served(f.addr, name, f.ca.Pool()); err == nil {
			t.Fatalf("a handshake as %q succeeded", name)
		}
	}
	// TLS-ALPN-01: the CA's handshake offers only acme-tls/1, which the
	// config must advertise.
	if !slices.Contains(f.src.Config().NextProtos, acme.ALPNProto) {
		t.Fatalf("NextProtos %v lack %s", f.src.Config().NextProtos, acme.ALPNProto)
	}
	if v := f.src.Config().MinVersion; v != 0x0303 {
		t.Fatalf("MinVersion %x, want TLS 1.2", v)
	}
	f.noCA(t)
}

// The HTTP-01 listener is autocert's handler: challenges for the domain
// are looked up (none is pending: 404), challenges for another host are
// refused, every other GET is redirected to https and other methods told
// to use it.
func TestACMEChallengeListener(t *testing.T) {
	f := newACMEFixture(t)
	addr, h := f.src.Challenge()
	if addr != "127.0.0.1:0" || h == nil {
		t.Fatalf("challenge %q %v", addr, h)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	for _, tc := range []struct {
		method, host, path string
		status             int
		location, body     string
	}{
		{"GET", domain, "/webhooks/support-bot?hub.mode=subscribe", http.StatusFound, "https://" + domain + "/webhooks/support-bot?hub.mode=subscribe", ""},
		{"GET", domain + ":80", "/graph/v21.0/me", http.StatusFound, "https://" + domain + ":443/graph/v21.0/me", ""},
		{"POST", domain, "/webhooks/support-bot", http.StatusBadRequest, "", "Use HTTPS"},
		{"GET", domain, "/.well-known/acme-challenge/some-token", http.StatusNotFound, "", ""},
		{"GET", "stranger.example.test", "/.well-known/acme-challenge/some-token", http.StatusForbidden, "", "not configured in HostWhitelist"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+l.Addr().String()+tc.path, strings.NewReader("{}"))
		req.Host = tc.host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location || !strings.Contains(string(body[:n]), tc.body) {
			t.Errorf("%s %s%s: %d %q %q, want %d %q %q", tc.method, tc.host, tc.path, resp.StatusCode, resp.Header.Get("Location"), body[:n], tc.status, tc.location, tc.body)
		}
	}
	f.noCA(t)
}

// Certificate files need no challenge listener.
func TestFilesHaveNoChallengeListener(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), "x", "127.0.0.1")
	src, err := tlsserve.New(tlsserve.Settings{CertFile: certFile, KeyFile: keyFile}, tlsserve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if addr, h := src.Challenge(); addr != "" || h != nil {
		t.Fatalf("challenge %q %v", addr, h)
	}
}
