package messengertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "..", "examples", "platform", "platform.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pages := p.Pages()
	if len(pages) != 1 || len(pages[0].Apps) != 3 || pages[0].DefaultApp != "support-bot" {
		t.Fatalf("pages %+v", pages)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "apps: []\npagez: []\n", "field pagez not found"},
		{"cr without default", "pages:\n  - id: \"1\"\n", "mode conversation_routing needs default_app"},
		{"bad mode", "pages:\n  - id: \"1\"\n    mode: hop\n    default_app: x\n", `mode "hop" is not`},
		{"unknown app on page", "apps:\n  - {name: a, id: \"1\", secret: s}\npages:\n  - id: \"9\"\n    default_app: a\n    apps: {b: {token: t}}\n", "apps.b is not in apps"},
		{"token reused", "apps:\n  - {name: a, id: \"1\"}\n  - {name: b, id: \"2\"}\npages:\n  - id: \"9\"\n    default_app: a\n    apps: {a: {token: t}, b: {token: t}}\n", "used twice"},
		{"callback needs secret", "apps:\n  - {name: a, id: \"1\", callback_url: \"http://x\"}\n", "secret is required"},
		{"duplicate app id", "apps:\n  - {name: a, id: \"1\"}\n  - {name: b, id: \"1\"}\n", "duplicate id 1"},
		{"zero config with default", "apps:\n  - {name: a, id: \"1\"}\npages:\n  - {id: \"9\", mode: zero_config, default_app: a}\n", "has no default_app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(f, []byte("listen: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(f); err == nil || !strings.Contains(err.Error(), f) {
		t.Fatalf("error %v does not name the file", err)
	}
}
