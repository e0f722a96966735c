package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A tls section on the good config: files, or ACME with its defaults.
func TestTLSConfigs(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml string
		check      func(t *testing.T, c *Config)
	}{
		{"none", "", func(t *testing.T, c *Config) {
			if c.TLS != nil || c.Admin.TLS {
				t.Fatalf("tls %+v, admin %v", c.TLS, c.Admin.TLS)
			}
		}},
		{"files", "tls: {cert_file: /etc/baton/fullchain.pem, key_file: /etc/baton/privkey.pem}\n", func(t *testing.T, c *Config) {
			if c.TLS.CertFile != "/etc/baton/fullchain.pem" || c.TLS.KeyFile != "/etc/baton/privkey.pem" || c.TLS.ACME != nil {
				t.Fatalf("tls %+v", c.TLS)
			}
		}},
		{"acme", "tls: {acme: {domains: [baton.example.com], cache_dir: /var/lib/baton/acme, email: ops@example.com}}\n", func(t *testing.T, c *Config) {
			a := c.TLS.ACME
			if a == nil || a.HTTPListen != ":80" || a.DirectoryURL != "" || len(a.Domains) != 1 || a.Email != "ops@example.com" {
				t.Fatalf("acme %+v", a)
			}
		}},
		{"acme staging, own challenge address", "tls: {acme: {domains: [baton.example.com, www.baton.example.com], cache_dir: acme, http_listen: \"0.0.0.0:8000\", directory_url: \"https://acme-staging-v02.api.letsencrypt.org/directory\"}}\n", func(t *testing.T, c *Config) {
			if a := c.TLS.ACME; a.HTTPListen != "0.0.0.0:8000" || !strings.Contains(a.DirectoryURL, "staging") || len(a.Domains) != 2 {
				t.Fatalf("acme %+v", a)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := tc.yaml + string(good)
			if tc.yaml != "" {
				// and the admin listener on the same certificate
				y = strings.Replace(y, "token_env: BATON_ADMIN_TOKEN", "token_env: BATON_ADMIN_TOKEN, tls: true", 1)
			}
			c, err := Parse("good.yml", []byte(y), lookup)
			if err != nil {
				t.Fatal(err)
			}
			if tc.yaml != "" && !c.Admin.TLS {
				t.Fatal("admin.tls not read")
			}
			tc.check(t, c)
		})
	}
}
