package adapters

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Bots commonly run beside Baton, on loopback or a private network, and
// are reached there. What no bot URL should reach is the host's link-local
// network and a cloud's instance metadata service, which hands the
// machine's credentials to whoever asks: a URL typed by mistake, or a DNS
// name a stranger controls, must not make Baton the one who asks.

// metadataAddrs are cloud metadata services outside the link-local ranges.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS instance metadata over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// metadataHosts are well-known names of metadata services.
var metadataHosts = []string{
	"metadata.google.internal", "metadata.goog", "metadata", // Google Cloud
	"instance-data", "instance-data.ec2.internal", // AWS
}

// ErrRefusedAddress is why the bot client refused to connect: the address
// is link-local or a cloud metadata service.
var ErrRefusedAddress = errors.New("link-local or cloud metadata address refused")

// RefusedAddr reports whether ip is link-local (169.254.0.0/16, which
// holds 169.254.169.254, the metadata service of most clouds, and
// fe80::/10) or another well-known cloud metadata address.
func RefusedAddr(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || slices.Contains(metadataAddrs, ip)
}

// RefusedHost reports whether a URL's host (a literal address, with or
// without a zone, or a name) is a refused address or a well-known metadata
// name. It resolves nothing: a name is judged by its spelling alone.
func RefusedHost(host string) bool {
	if ip, err := netip.ParseAddr(host); err == nil {
		return RefusedAddr(ip)
	}
	return slices.Contains(metadataHosts, strings.TrimSuffix(strings.ToLower(host), "."))
}

// refuseAtConnect is the bot dialer's Control: it sees the address after
// DNS resolution, so it also refuses a name that resolves to a metadata
// address, which config validation cannot see.
func refuseAtConnect(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %q: %w", address, err)
	}
	if RefusedAddr(ap.Addr()) {
		return ErrRefusedAddress
	}
	return nil
}

// refuseRedirect makes the client hand back a 3xx answer instead of
// following it; Check then makes it a final failure naming the Location.
// Following would post a signed delivery to a host nobody configured,
// possibly one the URL checks refuse (an internal or metadata address).
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// ClientOptions configure NewClient.
type ClientOptions struct {
	// MaxIdleConnsPerHost is how many connections to one bot stay open
	// for reuse (Go's default of 2 halves a concurrency of 4).
	MaxIdleConnsPerHost int
	// AllowLinkLocal lets connections reach link-local and cloud metadata
	// addresses, for a bot that really listens there.
	AllowLinkLocal bool
}

// NewClient returns the HTTP client for bots: pooled connections, no
// redirects followed, and unless allowed no connection to a link-local or
// cloud metadata address. A proxy named by HTTP_PROXY or HTTPS_PROXY is
// dialed instead of the bot, and is trusted to filter on its own.
func NewClient(o ClientOptions) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.MaxIdleConnsPerHost > 0 {
		tr.MaxIdleConnsPerHost = o.MaxIdleConnsPerHost
	}
	if !o.AllowLinkLocal {
		// The timeouts of http.DefaultTransport's own dialer.
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: refuseAtConnect}
		tr.DialContext = d.DialContext
	}
	return &http.Client{Transport: tr, CheckRedirect: refuseRedirect}
}

// PostError classifies a request to a bot that got no answer: a
// connection the client refused (ErrRefusedAddress) is final, as sending
// again reaches the same address; any other transport failure (refused,
// reset, timed out) is retried.
func PostError(err error) error {
	err = fmt.Errorf("post to bot: %w", err)
	if errors.Is(err, ErrRefusedAddress) {
		return &Error{Err: err}
	}
	return err
}
