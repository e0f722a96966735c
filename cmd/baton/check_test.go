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
	want := `bad_url.yml:7: apps[0].adapter.url: "http://169.254.169.254/latest/meta-data/" points at a link-local or cloud metadata address`
	if code != 1 || !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "points at") != 4 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
