// Package tlsserve gives Baton's listeners their certificates: a pair of
// PEM files, read again when they change on disk, or certificates that an
// ACME CA (Let's Encrypt) issues and renews through
// golang.org/x/crypto/acme/autocert. Meta sends webhooks only to https
// URLs with a certificate a public CA signed.
//
// It knows nothing of Baton's config: the orchestrator, which knows both,
// fills in Settings.
package tlsserve

import (
	"crypto/tls"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/batonhq/baton/clock"
)

// Settings say where the certificate comes from: CertFile and KeyFile,
// or ACME, exactly one (config validation has made sure).
type Settings struct {
	CertFile, KeyFile string
	ACME              *ACME
}

// ACME is a certificate from an ACME CA for Domains.
type ACME struct {
	Domains []string
	// CacheDir keeps the account key and the certificates across
	// restarts; without it every start would ask the CA again, and Let's
	// Encrypt limits how often one name is issued.
	CacheDir string
	Email    string
	// DirectoryURL is the CA's directory; empty means Let's Encrypt's
	// production one (autocert's default).
	DirectoryURL string
	// HTTPListen is where the HTTP-01 challenge is answered (port 80 is
	// where the CA asks); every other request there is redirected to
	// https.
	HTTPListen string
}

// Options are what a Source needs from outside.
type Options struct {
	Log *zap.Logger
	// Clock paces the checks of the certificate files (clock.System if
	// nil).
	Clock clock.Clock
	// CheckEvery is how often, at most, the files are read again
	// (DefaultCheckEvery if 0).
	CheckEvery time.Duration
}

func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = DefaultCheckEvery
	}
	return o
}

// Source is the TLS of a listener, built once and shared by the listeners
// that use the same certificate.
type Source struct {
	base       *tls.Config
	challenge  http.Handler
	httpListen string
	kind       string // "files" or "acme"
	fields     []zap.Field
}

// New builds the Source that s describes. Certificate files are read now,
// so that a missing or broken pair stops Baton before it listens.
func New(s Settings, o Options) (*Source, error) {
	o = o.withDefaults()
	switch {
	case s.ACME != nil:
		m := NewManager(*s.ACME)
		cfg := m.TLSConfig() // GetCertificate, and NextProtos for h2 and tls-alpn-01
		cfg.MinVersion = tls.VersionTLS12
		return &Source{base: cfg, challenge: m.HTTPHandler(nil), httpListen: s.ACME.HTTPListen, kind: "acme",
			fields: []zap.Field{zap.Strings("domains", s.ACME.Domains), zap.String("cache_dir", s.ACME.CacheDir), zap.String("http_listen", s.ACME.HTTPListen), zap.String("directory", directoryOf(*s.ACME))}}, nil
	case s.CertFile != "" && s.KeyFile != "":
		f, err := LoadFiles(s.CertFile, s.KeyFile, o)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: f.GetCertificate}
		return &Source{base: cfg, kind: "files", fields: []zap.Field{zap.String("cert_file", s.CertFile), zap.String("key_file", s.KeyFile)}}, nil
	}
	return nil, errors.New("tls: neither certificate files nor acme are set")
}

// NewManager is the autocert manager for a: it accepts the CA's terms,
// asks only for a.Domains (a stranger's SNI must not make Baton request
// certificates for names it was never given) and keeps what it gets in
// a.CacheDir.
func NewManager(a ACME) *autocert.Manager {
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		HostPolicy: autocert.HostWhitelist(a.Domains...),
		Cache:      autocert.DirCache(a.CacheDir),
		Email:      a.Email,
	}
	if a.DirectoryURL != "" {
		m.Client = &acme.Client{DirectoryURL: a.DirectoryURL}
	}
	return m
}

func directoryOf(a ACME) string {
	if a.DirectoryURL != "" {
		return a.DirectoryURL
	}
	return autocert.DefaultACMEDirectory
}

// Config is a tls.Config for one listener (a clone: net/http changes the
// one it is given).
func (s *Source) Config() *tls.Config { return s.base.Clone() }

// Challenge is the HTTP-01 listener an ACME source needs: its address and
// autocert's handler, which answers the CA's challenges and redirects
// every other GET to https. Certificate files need none: addr is "".
func (s *Source) Challenge() (addr string, h http.Handler) { return s.httpListen, s.challenge }

// LogFields say where the certificate comes from, for the start-up log.
func (s *Source) LogFields() []zap.Field {
	return append([]zap.Field{zap.String("tls", s.kind)}, s.fields...)
}
