package inbox

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Guesses sent at once count while bcrypt checks them: a burst must not
// get more than maxFailures tries at a password because each was looked
// at before any had failed.
func TestInboxLimitCountsSignInsUnderWay(t *testing.T) {
	f := newFixture(t)
	f.stop()
	// A real cost, so that the comparisons overlap as they do in use.
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	f.start(options(f.in.opt.Baton, f.data, string(h)))
	const burst = 3 * maxFailures
	codes := make([]int, burst)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("POST", "http://inbox.test/login", bytes.NewReader([]byte(`{"name":"anna","password":"guess"}`)))
			r.Header.Set("Content-Type", "application/json")
			r.RemoteAddr = "192.0.2.9:5000"
			w := httptest.NewRecorder()
			start.Wait()
			f.in.auth.login(w, r)
			codes[i] = w.Code
		}()
	}
	start.Done()
	wg.Wait()
	got := map[int]int{}
	for _, c := range codes {
		got[c]++
	}
	if got[http.StatusUnauthorized] != maxFailures || got[http.StatusTooManyRequests] != burst-maxFailures {
		t.Fatalf("%d guesses at once: %v, want %d checked (401), the rest refused (429)", burst, got, maxFailures)
	}
}

// An unknown name is checked against a hash as dear as the dearest
// agent's, so that its answer comes no sooner than a wrong password's.
func TestInboxUnknownNameCostsAsMuchAsAPassword(t *testing.T) {
	f := newFixture(t)
	f.stop()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost+1)
	if err != nil {
		t.Fatal(err)
	}
	f.start(options(f.in.opt.Baton, f.data, string(h)))
	if cost, err := bcrypt.Cost(f.in.auth.dummy); err != nil || cost != bcrypt.DefaultCost+1 {
		t.Fatalf("the unknown names' hash: cost %d %v, want %d", cost, err, bcrypt.DefaultCost+1)
	}
}

// The inbox's listener is open to strangers (agents sign in on it, Baton
// delivers to it): a client that sends headers and then dribbles, or
// never sends, its body is cut off rather than holding a connection and
// a goroutine for good.
func TestInboxServerCutsOffASlowBody(t *testing.T) {
	f := newFixture(t)
	srv := f.in.Server()
	if srv.ReadTimeout <= 0 || srv.ReadHeaderTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Fatalf("bounds %v %v %v %d", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	// The body's time covers the largest body at a slow but honest rate.
	if srv.ReadTimeout < 10*time.Second || srv.ReadTimeout > time.Minute {
		t.Fatalf("read timeout %v", srv.ReadTimeout)
	}
	srv.ReadTimeout = 300 * time.Millisecond // the same bound, sooner
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST /login HTTP/1.1\r\nHost: inbox.test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the connection was not closed: %v", err)
	}
}

// Behind a TLS-terminating proxy (trusted, no identity header) every
// sign-in comes from the proxy's address: the limit counts the address
// the proxy names, so ten bad guesses from one stranger do not lock out
// every agent, and the session cookie is Secure as the agent's browser
// reached the inbox over https.
func TestInboxBehindATLSProxy(t *testing.T) {
	f := newFixture(t)
	f.stop()
	opt := options(f.in.opt.Baton, f.data, mustHash(t))
	nets, err := ParseProxies([]string{"127.0.0.1", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	opt.Proxy = ProxyAuth{Proxies: nets}
	f.start(opt)
	login := func(name, pw, forwarded string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(`{"name":"`+name+`","password":"`+pw+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", forwarded)
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for range maxFailures {
		// A client's own X-Forwarded-For entry is not believed: the
		// address the trusted proxies saw is the last untrusted one.
		if resp := login("anna", "guess", "198.51.100.1, 203.0.113.1, 10.1.2.3"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess: %d", resp.StatusCode)
		}
	}
	if resp := login("ben", "guess", "198.51.100.99, 203.0.113.1"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the guesser, another name: %d, want 429", resp.StatusCode)
	}
	resp := login("ben", password, "203.0.113.2")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("another agent behind the same proxy: %d, want 200", resp.StatusCode)
	}
	if ck := resp.Cookies(); len(ck) != 1 || !ck[0].Secure {
		t.Fatalf("cookie behind the TLS proxy: %+v", ck)
	}
}
