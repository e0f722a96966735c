package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
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
