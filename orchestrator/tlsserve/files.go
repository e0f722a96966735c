package tlsserve

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
)

// DefaultCheckEvery is how often, at most, the certificate files are read
// again to see whether they changed: a renewed certificate is served
// within this long of the first handshake after it was written.
const DefaultCheckEvery = 5 * time.Second

// Files serves the certificate pair in two PEM files and follows the
// files as they change on disk (a renewal by certbot, a Kubernetes secret
// swapped under its symlink), without a restart and without a goroutine
// of its own: a handshake that comes after CheckEvery has passed reads
// the files again, while every other handshake takes the certificate in
// memory. A new pair that does not load leaves the old one in service; it
// is logged once and read again at every check until it loads.
type Files struct {
	certFile, keyFile string
	log               *zap.Logger
	clock             clock.Clock
	every             time.Duration

	cert atomic.Pointer[tls.Certificate]
	next atomic.Int64 // unix nanoseconds of the next check

	mu              sync.Mutex // one check at a time; guards the rest
	certPEM, keyPEM []byte     // the pair in service
	badCert, badKey []byte     // the last pair that did not load
	lastErr         string     // the error last logged, so a retry logs only a new one
	loaded          bool
}

// LoadFiles reads the pair at certFile and keyFile. It fails when the
// first pair does not load: Baton should not start without a certificate.
func LoadFiles(certFile, keyFile string, o Options) (*Files, error) {
	o = o.withDefaults()
	f := &Files{certFile: certFile, keyFile: keyFile, log: o.Log, clock: o.Clock, every: o.CheckEvery}
	c, k, err := f.read()
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		return nil, fmt.Errorf("tls: %s and %s: %w", certFile, keyFile, err)
	}
	f.use(&pair, c, k)
	return f, nil
}

// GetCertificate is tls.Config.GetCertificate: the pair in service, read
// again from the files first when CheckEvery has passed since the last
// check. A handshake never waits for another's check.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if f.clock.Now().UnixNano() >= f.next.Load() && f.mu.TryLock() {
		if now := f.clock.Now(); now.UnixNano() >= f.next.Load() {
			f.next.Store(now.Add(f.every).UnixNano())
			f.check()
		}
		f.mu.Unlock()
	}
	return f.cert.Load(), nil
}

// Certificate is the pair in service now.
func (f *Files) Certificate() *tls.Certificate { return f.cert.Load() }

// check reads both files and loads them when they differ from the pair in
// service. It compares contents, not modification times: file systems
// keep coarse times and `cp -p` keeps the old one, while reading two
// small files every few seconds costs nothing.
func (f *Files) check() {
	c, k, err := f.read()
	if err != nil {
		f.failed(err)
		return
	}
	switch {
	case bytes.Equal(c, f.certPEM) && bytes.Equal(k, f.keyPEM):
		f.lastErr = "" // back to the pair in service
		return
	case bytes.Equal(c, f.badCert) && bytes.Equal(k, f.badKey):
		return // the same bytes fail the same way; already logged
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		f.badCert, f.badKey = c, k
		// The errors of crypto/tls name what is wrong (no PEM data, a key
		// that does not match), never the key's bytes.
		f.failed(fmt.Errorf("%s and %s: %w", f.certFile, f.keyFile, err))
		return
	}
	f.use(&pair, c, k)
}

func (f *Files) read() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(f.certFile); err != nil {
		return nil, nil, fmt.Errorf("tls: cert_file: %w", err)
	}
	if keyPEM, err = os.ReadFile(f.keyFile); err != nil {
		return nil, nil, fmt.Errorf("tls: key_file: %w", err)
	}
	return certPEM, keyPEM, nil
}

func (f *Files) failed(err error) {
	if msg := err.Error(); msg != f.lastErr {
		f.lastErr = msg
		f.log.Error("tls certificate reload failed; the previous certificate stays in service", zap.Error(err))
	}
}

func (f *Files) use(pair *tls.Certificate, certPEM, keyPEM []byte) {
	f.cert.Store(pair)
	f.certPEM, f.keyPEM = certPEM, keyPEM
	f.badCert, f.badKey, f.lastErr = nil, nil, ""
	f.next.Store(f.clock.Now().Add(f.every).UnixNano())
	msg := "tls certificate loaded"
	if f.loaded {
		msg = "tls certificate reloaded"
	}
	f.loaded = true
	fields := []zap.Field{zap.String("cert_file", f.certFile)}
	if leaf := pair.Leaf; leaf != nil { // set by X509KeyPair since Go 1.23
		fields = append(fields, zap.Strings("names", leafNames(pair)), zap.Time("not_after", leaf.NotAfter))
		if f.clock.Now().After(leaf.NotAfter) {
			f.log.Warn("tls certificate has expired: clients will refuse it", fields...)
			return
		}
	}
	f.log.Info(msg, fields...)
}

// leafNames are the names and addresses the certificate is for.
func leafNames(pair *tls.Certificate) []string {
	leaf := pair.Leaf
	out := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		out = append(out, ip.String())
	}
	if len(out) == 0 && leaf.Subject.CommonName != "" {
		out = append(out, leaf.Subject.CommonName)
	}
	return out
}
