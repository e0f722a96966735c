package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	parse := func(t *testing.T, y string) *Config {
		t.Helper()
		c, err := Parse("test.yaml", []byte(y), lookup)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := parse(t, string(good))
	for _, tc := range []struct {
		name string
		edit func(string) string
		want []string
	}{
		{name: "unchanged", edit: func(y string) string { return y }},
		{name: "defaults written out", want: nil, edit: func(y string) string { return y + "log: {level: info, format: json}\n" }},
		{name: "listen and log", want: []string{"listen", "log.level"}, edit: func(y string) string {
			return strings.Replace(y, `listen: ":8080"`, `listen: ":9090"`, 1) + "log: {level: debug}\n"
		}},
		{name: "an adapter's url", want: []string{"apps[0].adapter.url"}, edit: func(y string) string {
			return strings.Replace(y, "9001/events", "9002/events", 1)
		}},
		{name: "an app added", want: []string{"apps"}, edit: func(y string) string {
			return strings.Replace(y, "  - name: page-inbox", "  - name: crm\n    app_id: \"123\"\n  - name: page-inbox", 1)
		}},
		{name: "a rule section added", want: []string{"pages[0].rules.return"}, edit: func(y string) string {
			return y + "    rules: {return: {after: 1h}}\n"
		}},
		{name: "a token's env", want: []string{"pages[0].tokens.support-bot.token_env"}, edit: func(y string) string {
			return strings.Replace(y, "{token_env: PAGE_TOKEN_SUPPORT_BOT}", "{token_env: COPY_OF_API_TOKEN}", 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(base, parse(t, tc.edit(string(good))))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Diff = %q, want %q", got, tc.want)
			}
		})
	}
}
