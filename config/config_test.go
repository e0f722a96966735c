package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every value holds "s3cr3t", so a test can tell that none is printed.
var testEnv = map[string]string{
	"BATON_ADMIN_TOKEN":        "admin-s3cr3t-0123456789",
	"SUPPORT_BOT_SECRET":       "app-s3cr3t",
	"SUPPORT_BOT_VERIFY_TOKEN": "verify-s3cr3t",
	"SUPPORT_BOT_API_TOKEN":    "api-s3cr3t-0123456789",
	"SUPPORT_BOT_HOOK_SECRET":  "hook-s3cr3t",
	"PAGE_TOKEN_SUPPORT_BOT":   "page-s3cr3t",
	"SHORT_API_TOKEN":          "short-s3cr3t",
	"COPY_OF_API_TOKEN":        "api-s3cr3t-0123456789",
	"COPY_OF_ADMIN_TOKEN":      "admin-s3cr3t-0123456789",
	"OTHER_API_TOKEN":          "other-s3cr3t-0123456789",
}

func lookup(name string) (string, bool) { v, ok := testEnv[name]; return v, ok }

func TestGoodConfig(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "good.yml"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := c.App("support-bot")
	if !ok || !a.Hosted() || a.Secret.Reveal() != "app-s3cr3t" || a.Adapter.Secret.Reveal() != "hook-s3cr3t" || !a.Adapter.Standby {
		t.Fatalf("app %+v", a)
	}
	if a.Adapter.MaxAttempts != 10 || a.Adapter.Concurrency != 16 || a.Adapter.Timeout.Seconds() != 10 {
		t.Fatalf("adapter defaults %+v", a.Adapter)
	}
	inbox, _ := c.App("page-inbox")
	if inbox.Hosted() {
		t.Fatal("page-inbox is external")
	}
	p := c.Pages[0]
	if p.Tokens["support-bot"].Token.Reveal() != "page-s3cr3t" || len(p.Takeover) != 1 || p.Takeover[0] != "support-bot" {
		t.Fatalf("page %+v", p)
	}
	// Secrets never print.
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", c, c, c), mustJSON(t, c)} {
		for _, v := range testEnv {
			if strings.Contains(s, v) {
				t.Fatalf("secret %q printed in %s", v, s)
			}
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Each testdata/NAME.yml has its errors, word for word, in NAME.err.
func TestBrokenConfigs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.err"))
	if len(files) < 5 {
		t.Fatalf("only %d cases", len(files))
	}
	for _, errFile := range files {
		name := strings.TrimSuffix(filepath.Base(errFile), ".err")
		t.Run(name, func(t *testing.T) {
			want, _ := os.ReadFile(errFile)
			b, err := os.ReadFile(filepath.Join("testdata", name+".yml"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(name+".yml", b, lookup)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, want Errors", err)
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Fatalf("got:\n%s\nwant:\n%s", got, want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("a secret is printed:\n%s", err)
			}
		})
	}
}

func TestExampleConfigsAreValid(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*", "baton.yaml"))
	for _, f := range files {
		env := func(name string) (string, bool) { return "x-" + name, true }
		if _, err := Load(f, env); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// LoadOffline checks a config on a machine without its secrets: unset
// variables are listed, not refused; everything else is still checked.
func TestLoadOffline(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	c, unset, err := LoadOffline(filepath.Join("testdata", "good.yml"), none)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"BATON_ADMIN_TOKEN", "SUPPORT_BOT_SECRET", "SUPPORT_BOT_VERIFY_TOKEN", "SUPPORT_BOT_API_TOKEN", "SUPPORT_BOT_HOOK_SECRET", "PAGE_TOKEN_SUPPORT_BOT"}
	if strings.Join(unset, " ") != strings.Join(want, " ") || len(c.Pages) != 1 {
		t.Fatalf("unset %v", unset)
	}
	for _, tc := range []struct{ file, want string }{
		{"inline_secret.yml", "inline_secret.yml:5: apps[0].secret: secrets are not written in the file"},
		{"broken_refs.yml", `broken_refs.yml:13: pages[0].primary: "suport-bot" is not an app in apps`},
	} {
		_, _, err := LoadOffline(filepath.Join("testdata", tc.file), none)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "is not set") {
			t.Errorf("%s: %v", tc.file, err)
		}
	}
	// A set value is still checked: a short admin token is refused.
	short := func(n string) (string, bool) {
		return map[string]string{"BATON_ADMIN_TOKEN": "short"}[n], n == "BATON_ADMIN_TOKEN"
	}
	if _, _, err := LoadOffline(filepath.Join("testdata", "good.yml"), short); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Fatalf("short token: %v", err)
	}
}

func TestInboxConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	y := string(b) + `
inbox:
  app: support-bot
  agents:
    - {name: anna, display_name: Anna, password_hash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", persona: true, picture: "https://example.com/anna.png"}
    - {name: ben.k, password_hash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"}
  done: {closing_message: "Thanks for writing!"}
  canned_replies: [{title: Hours, text: "We're open 9 to 5."}]
`
	c, err := Parse("inbox.yml", []byte(y), lookup)
	if err != nil {
		t.Fatal(err)
	}
	in := c.Inbox
	if in.Listen != DefaultInboxListen || in.Data != DefaultInboxData || in.BatonURL != "http://127.0.0.1:8080" || in.Done.Action != DonePass ||
		in.Hold.Typing != DefaultTypingHold || in.Hold.Claim != DefaultClaimHold || in.WarnBefore != DefaultWarnBefore {
		t.Fatalf("defaults %+v", in)
	}
	if in.Agents[1].DisplayName != "ben.k" || in.Agents[0].DisplayName != "Anna" || len(in.Canned) != 1 {
		t.Fatalf("agents %+v", in.Agents)
	}
	if c, err := Parse("none.yml", b, lookup); err != nil || c.Inbox != nil {
		t.Fatalf("no inbox section: %v %+v", err, c)
	}
}

// store.postgres replaces the bbolt file: its DSN comes from the
// environment, and data has no default beside it.
func TestPostgresStore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "bad_store_empty.yml"))
	if err != nil {
		t.Fatal(err)
	}
	yml := strings.Replace(string(b), "store: {}", "store: {postgres: {dsn_env: BATON_PG_DSN, schema: baton}}", 1)
	env := func(name string) (string, bool) {
		if name == "BATON_PG_DSN" {
			return "postgres://baton:s3cr3t@db/baton", true
		}
		return lookup(name)
	}
	c, err := Parse("pg.yml", []byte(yml), env)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Store.Postgres
	if p == nil || p.DSN.Reveal() != "postgres://baton:s3cr3t@db/baton" || p.Schema != "baton" || c.Data != "" {
		t.Fatalf("store %+v, data %q", p, c.Data)
	}
	if got := c.StoreName(); got != "postgres (schema baton)" {
		t.Errorf("store name %q", got)
	}
	c, err = Load(filepath.Join("testdata", "good.yml"), lookup)
	if err != nil || c.Store.Postgres != nil || c.StoreName() != "./baton.db" {
		t.Fatalf("without store: %+v %v", c.Store, err)
	}
}
