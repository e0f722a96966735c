package orchestrator_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/orchestrator/tlsserve"
	"github.com/batonhq/baton/orchestrator/tlsserve/tlstest"
)

// withTLS makes Baton serve its public listener over https with a
// certificate from ca for 127.0.0.1 and localhost, written to dir
// (cert.pem, key.pem, and ca.pem, which the harness trusts).
func withTLS(t *testing.T, ca *tlstest.CA, dir string) harnessOpt {
	certFile, keyFile := ca.WriteFiles(t, dir, "baton", "127.0.0.1", "localhost")
	return func(yaml *string) {
		*yaml += fmt.Sprintf("tls: {cert_file: %q, key_file: %q}\n", certFile, keyFile)
	}
}

// withAdminTLS puts the admin listener on the same certificate.
func withAdminTLS(yaml *string) {
	*yaml = strings.Replace(*yaml, "token_env: BATON_ADMIN_TOKEN}", "token_env: BATON_ADMIN_TOKEN, tls: true}", 1)
}

// acmeDomain is the name the ACME tests serve; the harness's clients
// reach it on loopback, as curl --resolve would.
const acmeDomain = "baton.example.test"

// withACME makes Baton take its certificate from ACME, with autocert's
// cache in dir/acme already holding one for acmeDomain from ca (so no CA
// is asked), the directory at directory, and HTTP-01 on challengeAddr.
func withACME(t *testing.T, ca *tlstest.CA, dir, directory, challengeAddr string) harnessOpt {
	cache := filepath.Join(dir, "acme")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	// autocert's entry for an ECDSA certificate is named after the domain:
	// the PEM private key, then the chain (autocert.go, cachePut).
	certPEM, keyPEM := ca.Issue(t, "baton by acme", acmeDomain)
	tlstest.WriteFile(t, filepath.Join(cache, acmeDomain), append(append(keyPEM, certPEM...), ca.PEM...))
	tlstest.WriteFile(t, filepath.Join(dir, "ca.pem"), ca.PEM)
	return func(yaml *string) {
		*yaml += fmt.Sprintf("tls: {acme: {domains: [%s], cache_dir: %q, email: ops@example.test, http_listen: %q, directory_url: %q}}\n",
			acmeDomain, cache, challengeAddr, directory)
	}
}

// tlsClient trusts the CA whose ca.pem withTLS or withACME wrote beside
// the certificate or the cache, and dials acmeDomain on loopback.
func tlsClient(t *testing.T, c *config.TLS) *http.Client {
	beside := c.CertFile
	if c.ACME != nil {
		beside = c.ACME.CacheDir
	}
	client := tlstest.Client(t, tlstest.PoolFromFile(t, filepath.Join(filepath.Dir(beside), "ca.pem")))
	tr := client.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && host == acmeDomain {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return client
}

// tlsHost is the host:port a client names to reach addr: the ACME
// certificate is for a name, the files' for 127.0.0.1.
func tlsHost(c *config.TLS, addr string) string {
	if c.ACME == nil {
		return addr
	}
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(acmeDomain, port)
}

// servedCN is the common name of the certificate a new connection to
// Baton's public listener gets.
func servedCN(t *testing.T, h *harness, ca *tlstest.CA) string {
	t.Helper()
	pub, _ := strings.CutPrefix(h.baton, "https://")
	c, err := tlstest.Served(pub, "127.0.0.1", ca.Pool())
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c.Subject.CommonName
}

// Everything on the public listener works over https: Meta's verification
// GET, signed webhooks (acknowledged, delivered to the bot), the bot API
// and /graph through the repo's own Graph client; plain http is refused.
func TestPublicListenerOverTLS(t *testing.T) {
	ca := tlstest.NewCA(t)
	h := newHarness(t, withTLS(t, ca, t.TempDir()))
	if !strings.HasPrefix(h.baton, "https://") {
		t.Fatalf("baton at %s", h.baton)
	}
	checkVerifyAndWebhook(t, h)

	// The bot API, with the bot's token.
	var tv api.ThreadView
	if st := h.do("GET", h.baton+"/v1/threads/"+pageID+"/"+psid, env["SUPPORT_API"], nil, &tv); st != 200 || tv.PSID != psid || tv.LastUserMessageAt == nil {
		t.Fatalf("bot API over https: %d %+v", st, tv)
	}
	// /graph through messenger.Client, as a Go bot would call it.
	g, err := messenger.NewClient(messenger.ClientOptions{BaseURL: h.baton + "/graph", Version: "v21.0", HTTPClient: h.client, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Send(context.Background(), messenger.Credentials{AccessToken: env["SUPPORT_API"]},
		&messenger.SendRequest{Recipient: messenger.Recipient{ID: psid}, MessagingType: messenger.MessagingTypeResponse, Message: &messenger.OutgoingMessage{Text: "over tls"}})
	if err != nil || !strings.HasPrefix(res.MessageID, "m_") {
		t.Fatalf("send through /graph over https: %+v %v", res, err)
	}
	if err := g.PassThreadControl(context.Background(), messenger.Credentials{AccessToken: env["SUPPORT_API"]}, psid, billingID, "billing"); err != nil {
		t.Fatalf("pass through /graph over https: %v", err)
	}
	if h.platformOwner() != billingID || h.batonThread().Owner != "billing-bot" {
		t.Fatalf("after pass: platform %q, baton %+v", h.platformOwner(), h.batonThread())
	}

	// Plain http on the TLS port gets net/http's 400, not the handler.
	resp, err := http.Get("http://" + strings.TrimPrefix(h.baton, "https://") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain http on the TLS port: %d", resp.StatusCode)
	}
	// The admin listener stays plain unless admin.tls is set.
	if !strings.HasPrefix(h.admin, "http://") {
		t.Fatalf("admin at %s", h.admin)
	}
}

// checkVerifyAndWebhook is Meta's side over https: the verification GET,
// a signed webhook POSTed (acknowledged), and one sent by the platform
// (delivered to the bot).
func checkVerifyAndWebhook(t *testing.T, h *harness) {
	t.Helper()
	resp, err := h.client.Get(h.baton + "/webhooks/support-bot?hub.mode=subscribe&hub.verify_token=" + env["SUPPORT_VERIFY"] + "&hub.challenge=1158201444")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "1158201444" {
		t.Fatalf("verification over https: %d %q", resp.StatusCode, b)
	}
	if st, body := h.post("support-bot", env["SUPPORT_SECRET"], messageBody(pageID, "m_tls_1", "posted")); st != 200 || body != "EVENT_RECEIVED" {
		t.Fatalf("signed webhook over https: %d %q", st, body)
	}
	if got := text(h.support.next()); got != "posted" {
		t.Fatalf("bot got %q", got)
	}
	h.say("hello over tls")
	if got := text(h.support.next()); got != "hello over tls" {
		t.Fatalf("bot got %q", got)
	}
}

// Renewed certificate files are served to new connections without a
// restart; a broken replacement keeps the certificate in service, and
// webhooks keep flowing throughout.
func TestTLSCertificateSwapWithoutRestart(t *testing.T) {
	ca, dir := tlstest.NewCA(t), t.TempDir()
	h := newHarness(t, withTLS(t, ca, dir))
	if cn := servedCN(t, h, ca); cn != "baton" {
		t.Fatalf("served %q", cn)
	}
	ca.WriteFiles(t, dir, "renewed", "127.0.0.1", "localhost")
	h.clock.Advance(tlsserve.DefaultCheckEvery) // Baton re-reads the files at most this often
	if cn := servedCN(t, h, ca); cn != "renewed" {
		t.Fatalf("served %q after the renewal, want renewed", cn)
	}
	h.say("after the renewal")
	if got := text(h.support.next()); got != "after the renewal" {
		t.Fatalf("bot got %q", got)
	}

	// A half-done replacement: a key that is not PEM.
	tlstest.WriteFile(t, filepath.Join(dir, "key.pem"), []byte("-----BEGIN EC PRIVATE KEY-----\ntruncated"))
	h.clock.Advance(tlsserve.DefaultCheckEvery)
	if cn := servedCN(t, h, ca); cn != "renewed" {
		t.Fatalf("served %q after a broken replacement, want renewed", cn)
	}
	h.say("despite a broken key file")
	if got := text(h.support.next()); got != "despite a broken key file" {
		t.Fatalf("bot got %q", got)
	}
}

// admin.tls serves the admin API with the public listener's certificate.
func TestAdminListenerOverTLS(t *testing.T) {
	ca := tlstest.NewCA(t)
	h := newHarness(t, withTLS(t, ca, t.TempDir()), withAdminTLS)
	if !strings.HasPrefix(h.admin, "https://") {
		t.Fatalf("admin at %s", h.admin)
	}
	h.say("hi")
	h.support.next()
	if tv := h.batonThread(); tv.PSID != psid || tv.LastUserMessageAt == nil {
		t.Fatalf("admin thread over https: %+v", tv)
	}
	if _, err := tlstest.Served(strings.TrimPrefix(h.admin, "https://"), "127.0.0.1", ca.Pool()); err != nil {
		t.Fatal(err)
	}
}

// With ACME, a certificate already in autocert's cache is served for its
// domain without asking any CA; webhooks and /graph work over it, and the
// HTTP-01 listener redirects to https.
func TestPublicListenerOverACME(t *testing.T) {
	ca, dir := tlstest.NewCA(t), t.TempDir()
	asked := make(chan string, 100)
	directory := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Method + " " + r.URL.Path
		http.Error(w, "no CA here", http.StatusServiceUnavailable)
	}))
	t.Cleanup(directory.Close)
	challenge := freePort(t)
	h := newHarness(t, withACME(t, ca, dir, directory.URL+"/directory", challenge))
	if want := "https://" + acmeDomain + ":"; !strings.HasPrefix(h.baton, want) {
		t.Fatalf("baton at %s, want %s...", h.baton, want)
	}
	checkVerifyAndWebhook(t, h)
	pub := strings.TrimPrefix(h.baton, "https://")
	_, port, _ := net.SplitHostPort(pub)
	c, err := tlstest.Served(net.JoinHostPort("127.0.0.1", port), acmeDomain, ca.Pool())
	if err != nil || c.Subject.CommonName != "baton by acme" {
		t.Fatalf("served %v %v", c, err)
	}
	// A name Baton was not given gets no certificate (and asks no CA).
	if _, err := tlstest.Served(net.JoinHostPort("127.0.0.1", port), "stranger.example.test", ca.Pool()); err == nil {
		t.Fatal("a stranger's name got a certificate")
	}

	// The HTTP-01 listener: a challenge Baton has not started is unknown,
	// everything else is sent to https.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		path     string
		status   int
		location string
	}{
		{"/webhooks/support-bot", http.StatusFound, "https://" + acmeDomain + "/webhooks/support-bot"},
		{"/.well-known/acme-challenge/x", http.StatusNotFound, ""},
	} {
		req, _ := http.NewRequest("GET", "http://"+challenge+tc.path, nil)
		req.Host = acmeDomain
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Fatalf("GET %s on the challenge listener: %d %q", tc.path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	noFollow.CloseIdleConnections()
	select {
	case r := <-asked:
		t.Fatalf("the ACME directory was asked: %s", r)
	default:
	}
}
