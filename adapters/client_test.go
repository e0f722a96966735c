package adapters

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestRefusedHost(t *testing.T) {
	for _, tt := range []struct {
		host    string
		refused bool
	}{
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fd00:ec2::254", true},
		{"100.100.100.200", true},
		{"metadata.google.internal", true},
		{"Metadata.Google.Internal.", true},
		{"metadata", true},
		{"instance-data.ec2.internal", true},
		// Bots beside Baton.
		{"127.0.0.1", false},
		{"::1", false},
		{"10.0.0.7", false},
		{"192.168.1.20", false},
		{"172.17.0.2", false},
		{"fd00::1", false},
		{"localhost", false},
		{"bot.internal", false},
		{"metadata.example.com", false},
	} {
		if got := RefusedHost(tt.host); got != tt.refused {
			t.Errorf("RefusedHost(%q) = %v, want %v", tt.host, got, tt.refused)
		}
	}
}

// The dialer judges the address after resolution, whatever name led there.
func TestRefuseAtConnect(t *testing.T) {
	for _, tt := range []struct {
		addr    string
		refused bool
	}{
		{"169.254.169.254:80", true},
		{"[fe80::1%lo]:8080", true},
		{"[fd00:ec2::254]:80", true},
		{"127.0.0.1:9001", false},
		{"[::1]:9001", false},
		{"10.1.2.3:443", false},
	} {
		err := refuseAtConnect("tcp", tt.addr, nil)
		if errors.Is(err, ErrRefusedAddress) != tt.refused {
			t.Errorf("%s: %v", tt.addr, err)
		}
	}
}

func TestClientRefusesMetadataAtConnect(t *testing.T) {
	c := NewClient(ClientOptions{})
	c.Timeout = 2 * time.Second // without the guard, the test fails on this
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://169.254.169.254/latest/meta-data/", nil)
	_, err := c.Do(req)
	if !errors.Is(err, ErrRefusedAddress) {
		t.Fatalf("got %v, want ErrRefusedAddress", err)
	}
	if err := PostError(err); Retryable(err) {
		t.Fatalf("a refused address is retried: %v", err)
	}

	// Allowed, the client tries: whether something answers depends on
	// the network the test runs in, but the client does not refuse.
	c = NewClient(ClientOptions{AllowLinkLocal: true})
	c.Timeout = 300 * time.Millisecond
	resp, err := c.Get("http://169.254.0.1:9/")
	if errors.Is(err, ErrRefusedAddress) {
		t.Fatalf("allowed: %v", err)
	}
	if err == nil {
		resp.Body.Close()
	}

	// Loopback stays reachable.
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	resp, err = NewClient(ClientOptions{}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !netip.MustParseAddrPort(srv.Listener.Addr().String()).Addr().IsLoopback() {
		t.Fatal("test server not on loopback")
	}
}
