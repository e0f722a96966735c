package messengertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		{"bad platform", "apps:\n  - {name: a, id: \"1\"}\npages:\n  - {id: \"9\", default_app: a, platform: tiktok}\n", `platform "tiktok" is not messenger or instagram`},
		{"bad webhook_order", "settings: {webhook_order: random}\n", `settings: webhook_order "random" is not per_app or shuffled`},
		{"bad batch_order", "settings: {batch_order: reversed}\n", `settings: batch_order "reversed" is not sent or shuffled`},
		{"bad inbox_done_to", "settings: {inbox_done_to: primary}\n", `settings: inbox_done_to "primary" is not default_app or idle`},
		{"delay max below min", "settings: {webhook_delay: {min: 2s, max: 1s}}\n", "settings: webhook_delay {min: 2s, max: 1s} needs 0 <= min <= max"},
		{"repeat over one", "settings: {webhook_repeat: 1.5}\n", "settings: webhook_repeat 1.5 is not a probability from 0 to 1"},
		{"negative window", "settings: {webhook_window: -1}\n", "settings: webhook_window -1 is negative"},
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

func TestDisorderSettingsYAML(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
apps:
  - {name: a, id: "1"}
pages:
  - {id: "17841400100200300", platform: instagram, default_app: a, apps: {a: {token: t}}}
settings:
  seed: 42
  webhook_order: shuffled
  webhook_window: 4
  webhook_delay: {min: 10ms, max: 200ms}
  webhook_repeat: 0.1
  max_batch: 5
  batch_order: shuffled
  inbox_done_to: idle
  inbox_done_webhook: true
  ai_reply_takes_control: true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		Seed: 42, WebhookOrder: OrderShuffled, WebhookWindow: 4,
		WebhookDelay:  DelayRange{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond},
		WebhookRepeat: 0.1, MaxBatch: 5, BatchOrder: OrderShuffled,
		InboxDoneTo: InboxDoneToIdle, InboxDoneWebhook: true, AIReplyTakesControl: true,
	}
	if cfg.Settings != want || cfg.Pages[0].Platform != PlatformInstagram {
		t.Fatalf("settings %+v\nwant     %+v", cfg.Settings, want)
	}
	var none Settings
	none.ApplyDefaults()
	if none.WebhookOrder != OrderPerApp || none.BatchOrder != OrderSent || none.WebhookWindow != 10 || none.InboxDoneTo != InboxDoneToDefault ||
		none.InboxDoneWebhook || none.AIReplyTakesControl || none.ExpiryWebhook || none.RoutingWebhook || none.WebhookRepeat != 0 {
		t.Fatalf("defaults %+v", none)
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
