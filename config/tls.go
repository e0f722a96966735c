package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// TLS is the public listener's certificate: a pair of PEM files
// (CertFile and KeyFile, read again when they change) or certificates
// from an ACME CA such as Let's Encrypt, exactly one of the two.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	ACME     *ACME  `yaml:"acme"`
}

// ACME asks an ACME CA for certificates for Domains and renews them.
type ACME struct {
	// Domains are the names Meta and people reach Baton at; a handshake
	// for any other name gets no certificate.
	Domains []string `yaml:"domains"`
	// CacheDir keeps the account key and the certificates across
	// restarts (created, mode 0700).
	CacheDir string `yaml:"cache_dir"`
	// Email is given to the CA for expiry notices; optional.
	Email string `yaml:"email"`
	// HTTPListen answers the CA's HTTP-01 challenge and redirects the
	// rest to https (default ":80": the CA asks on port 80).
	HTTPListen string `yaml:"http_listen"`
	// DirectoryURL is the CA's directory (default Let's Encrypt's
	// production one; its staging one while trying things out).
	DirectoryURL string `yaml:"directory_url"`
}

// DefaultACMEHTTPListen is where the HTTP-01 challenge is answered.
const DefaultACMEHTTPListen = ":80"

func (t *TLS) applyDefaults() {
	if t != nil && t.ACME != nil && t.ACME.HTTPListen == "" {
		t.ACME.HTTPListen = DefaultACMEHTTPListen
	}
}

// hostnameRE is a DNS name of two labels or more: autocert refuses a
// handshake for a name without a dot, and an ACME CA issues for neither
// an IP address nor, by HTTP-01, a wildcard.
var hostnameRE = regexp.MustCompile(`^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (v *validator) tls(c *Config) {
	t := c.TLS
	if t == nil {
		if c.Admin.TLS {
			v.bad("admin.tls", "needs the top-level tls section: the admin listener serves its certificate")
		}
		return
	}
	files := t.CertFile != "" || t.KeyFile != ""
	switch {
	case files && t.ACME != nil:
		v.bad("tls.acme", "set either cert_file and key_file or acme, not both")
	case !files && t.ACME == nil:
		v.bad("tls", "set cert_file and key_file (a certificate you have) or acme (one Baton asks Let's Encrypt for)")
	case t.CertFile == "" && t.KeyFile != "":
		v.bad("tls.cert_file", "required with key_file: the PEM certificate chain")
	case t.KeyFile == "" && t.CertFile != "":
		v.bad("tls.key_file", "required with cert_file: the PEM private key of the certificate")
	}
	if t.ACME != nil {
		v.acme("tls.acme", t.ACME, c)
	}
}

func (v *validator) acme(path string, a *ACME, c *Config) {
	if len(a.Domains) == 0 {
		v.bad(path+".domains", "required: the names Baton is reached at, such as [baton.example.com]")
	}
	seen := map[string]bool{}
	for i, d := range a.Domains {
		f := fmt.Sprintf("%s.domains[%d]", path, i)
		switch {
		case net.ParseIP(d) != nil:
			v.bad(f, "%q is an IP address: ACME certificates here are for names such as baton.example.com", d)
		case strings.HasPrefix(d, "*."):
			v.bad(f, "%q is a wildcard, which the HTTP-01 and TLS-ALPN-01 challenges cannot prove; list each name", d)
		case !hostnameRE.MatchString(d):
			v.bad(f, "%q is not a host name such as baton.example.com (no scheme, port or path)", d)
		case seen[strings.ToLower(d)]:
			v.bad(f, "%q is listed twice", d)
		}
		seen[strings.ToLower(d)] = true
	}
	if a.CacheDir == "" {
		v.bad(path+".cache_dir", "required: a directory that keeps the certificates across restarts (Let's Encrypt limits how often a name is issued)")
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t<>")) {
		v.bad(path+".email", "%q is not an email address", a.Email)
	}
	if _, port, err := net.SplitHostPort(a.HTTPListen); err != nil || !validPort(port) {
		v.bad(path+".http_listen", "%q is not an address such as :80", a.HTTPListen)
	} else if a.HTTPListen == c.Listen {
		v.bad(path+".http_listen", "%q is the public listener's address too; the challenge needs its own (:80)", a.HTTPListen)
	}
	if a.DirectoryURL != "" {
		if u, err := url.Parse(a.DirectoryURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.bad(path+".directory_url", "%q is not an http(s) URL such as https://acme-staging-v02.api.letsencrypt.org/directory", a.DirectoryURL)
		}
	}
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}
