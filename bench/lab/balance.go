package lab

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"
)

// Balancer is the load balancer replicas sit behind, in the bench
// process: each request goes to the next replica in turn, as HAProxy's
// roundrobin of deploy/haproxy.cfg sends it, over keep-alive connections
// to each; a replica that refuses the connection is skipped, as HAProxy's
// redispatch does (no byte of the request reached it).
type Balancer struct {
	backends []string
	next     atomic.Uint64
	tr       *http.Transport
	client   *http.Client
	maxBody  int64
}

// NewBalancer balances over the backends (host:port) with up to conns
// idle connections kept to each.
func NewBalancer(backends []string, conns int) *Balancer {
	// Baton's answers pass as they are: no compression asked on the way.
	tr := &http.Transport{MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute, DisableCompression: true}
	return &Balancer{backends: backends, tr: tr, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, maxBody: 1 << 20}
}

// ServeHTTP forwards r to the next backend that accepts the connection.
// The body is read first, so that it can be sent again to another.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.maxBody))
	if err != nil {
		http.Error(w, "balancer: read: "+err.Error(), http.StatusBadRequest)
		return
	}
	for range b.backends {
		backend := b.backends[(b.next.Add(1)-1)%uint64(len(b.backends))]
		out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+backend+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, "balancer: "+err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := b.client.Do(out)
		if errors.Is(err, syscall.ECONNREFUSED) {
			continue
		}
		if err != nil {
			http.Error(w, "balancer: "+err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "balancer: every backend refused the connection", http.StatusBadGateway)
}

// Close closes the idle connections to the backends.
func (b *Balancer) Close() { b.tr.CloseIdleConnections() }
