package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/orchestrator/tlsserve/tlstest"
)

// baton check refuses an adapter URL at a metadata address, at its line;
// baton serve loads the config the same way before it starts.
func TestCheckRefusesMetadataURL(t *testing.T) {
	for _, name := range []string{"BATON_ADMIN_TOKEN", "SUPPORT_BOT_SECRET", "SUPPORT_BOT_VERIFY_TOKEN", "SUPPORT_BOT_HOOK_SECRET", "PAGE_TOKEN_SUPPORT_BOT"} {
		t.Setenv(name, "x-"+name)
	}
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"check", "-config", filepath.Join("..", "..", "config", "testdata", "bad_url.yml")}, &stdout, &stderr)
	want := `bad_url.yml:8: apps[0].adapter.url: "http://169.254.169.254/latest/meta-data/" points at a link-local or cloud metadata address`
	if code != 1 || !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "points at") != 4 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// baton check -offline passes a good config with no secret set and says
// the secrets went unchecked; a broken reference still fails at its line.
func TestCheckOffline(t *testing.T) {
	for _, name := range []string{"BATON_ADMIN_TOKEN", "SUPPORT_BOT_SECRET", "SUPPORT_BOT_VERIFY_TOKEN", "SUPPORT_BOT_API_TOKEN", "SUPPORT_BOT_HOOK_SECRET", "PAGE_TOKEN_SUPPORT_BOT"} {
		t.Setenv(name, "")
	}
	testdata := filepath.Join("..", "..", "config", "testdata")
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"check", "-offline", "-config", filepath.Join(testdata, "good.yml")}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "ok offline (2 apps, 1 pages)") || strings.Count(stdout.String(), "secrets not checked: 6 variable(s) not set") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	// Without -offline the same file fails: the secrets are required.
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"check", "-config", filepath.Join(testdata, "good.yml")}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "environment variable BATON_ADMIN_TOKEN is not set") {
		t.Fatalf("online: exit %d, stderr %q", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"check", "-offline", "-config", filepath.Join(testdata, "broken_refs.yml")}, &stdout, &stderr)
	want := `broken_refs.yml:13: pages[0].primary: "suport-bot" is not an app in apps (known: support-bot, page-inbox)`
	if code != 1 || !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "is not set") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// baton check opens the certificate files a tls section names: a key of
// another certificate fails the check, not the start; a right pair passes.
func TestCheckOpensCertificateFiles(t *testing.T) {
	for _, name := range []string{"BATON_ADMIN_TOKEN", "SUPPORT_BOT_SECRET", "SUPPORT_BOT_VERIFY_TOKEN", "SUPPORT_BOT_API_TOKEN", "SUPPORT_BOT_HOOK_SECRET", "PAGE_TOKEN_SUPPORT_BOT"} {
		t.Setenv(name, "x-"+name+"-0123456789abcdef")
	}
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	cert, key := ca.WriteFiles(t, dir, "baton.example.com", "baton.example.com")
	other := filepath.Join(dir, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	_, otherKey := ca.WriteFiles(t, other, "other.example.com", "other.example.com")
	good, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", "good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		code int
		want string
	}{
		{key, 0, "ok (2 apps, 1 pages)"},
		{otherKey, 1, "private key does not match public key"},
		{filepath.Join(dir, "missing.pem"), 1, "missing.pem"},
	} {
		cfgFile := filepath.Join(dir, "baton.yaml")
		body := fmt.Sprintf("tls: {cert_file: %q, key_file: %q}\n%s", cert, tc.key, good)
		if err := os.WriteFile(cfgFile, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr strings.Builder
		code := run(context.Background(), []string{"check", "-config", cfgFile}, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
			t.Errorf("key %s: exit %d, stdout %q, stderr %q; want exit %d and %q", filepath.Base(tc.key), code, stdout.String(), stderr.String(), tc.code, tc.want)
		}
	}
}
