package topology

import (
	"testing"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/config"
)

type nopAdapter struct{ adapters.Adapter }

// Caller tells an app's own token (any of its pages) from a page's token
// for it (that page alone); anything else is no one.
func TestCaller(t *testing.T) {
	env := map[string]string{
		"ADMIN": "admin-token-0123456789", "SECRET": "s", "VERIFY": "v", "HOOK": "h", "PT1": "p1", "PT2": "p2",
		"BOT_API": "bot-api-token-0123456789", "BOT_PAGE2": "bot-page2-token-0123456789",
	}
	cfg, err := config.Parse("t.yaml", []byte(`
admin: {token_env: ADMIN}
apps:
  - name: bot
    app_id: "512345678901234"
    secret_env: SECRET
    verify_token_env: VERIFY
    token_env: BOT_API
    adapter: {type: http, url: "http://127.0.0.1:9001/events", secret_env: HOOK}
pages:
  - id: "100200300400500"
    primary: bot
    tokens: {bot: {token_env: PT1}}
  - id: "100200300400501"
    primary: bot
    tokens: {bot: {token_env: PT2, api_token_env: BOT_PAGE2}}
`), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	top, err := New(cfg, map[string]adapters.Adapter{"bot": nopAdapter{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tok, app, page string
	}{
		{env["BOT_API"], "bot", ""},
		{env["BOT_PAGE2"], "bot", "100200300400501"},
		{"bot-page2-token-012345678", "", ""},
		{env["PT2"], "", ""}, // a page access token is not a Baton token
		{"", "", ""},
	} {
		a, p := top.Caller(c.tok)
		gotApp, gotPage := "", ""
		if a != nil {
			gotApp = a.Name
		}
		if p != nil {
			gotPage = p.ID
		}
		if gotApp != c.app || gotPage != c.page {
			t.Errorf("Caller(%q) = %q, %q; want %q, %q", c.tok, gotApp, gotPage, c.app, c.page)
		}
	}
	if a := top.AppByToken(env["BOT_PAGE2"]); a != nil {
		t.Errorf("the bot API takes a page's token: %s", a.Name)
	}
}
