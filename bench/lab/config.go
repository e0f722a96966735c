package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Target is the Baton a run measures.
type Target struct {
	BotURL     string // the recording bot
	SlowURL    string // a second, slow bot, or empty
	Conns      int    // delivery concurrency per bot
	CommitWait time.Duration
	Profile    string // write CPU and allocation profiles of the run here (and .allocs), or nothing
	// MaxAttempts is delivery.max_attempts (0: the default): a backlog's
	// bot is down longer than the default allows.
	MaxAttempts int
	// Adapter is the bench bot's adapter type (default http); Batch its
	// batch setting as YAML ("{max: 100}"), or empty for none.
	Adapter, Batch string
	// Schema, when set, makes the config a replica's: the PostgreSQL
	// store of PGDSNEnv in this schema instead of the data file, and a
	// cluster section (the replica's name and addresses come from
	// baton serve's flags; see StartReplicas).
	Schema string
}

// WriteConfig writes a baton.yaml into dir for one hosted bench app on
// every page, with the bot at t.BotURL, and when t.SlowURL is set a second
// hosted app that asks for standby copies, as a slow bot. It returns the
// path and the public and admin addresses.
func WriteConfig(dir, data string, pageIDs []string, t Target) (cfgPath, public, admin string, err error) {
	pub, err := FreeAddr()
	if err != nil {
		return "", "", "", err
	}
	adm, err := FreeAddr()
	if err != nil {
		return "", "", "", err
	}
	var pages strings.Builder
	for _, p := range pageIDs {
		if t.SlowURL != "" {
			fmt.Fprintf(&pages, "  - {id: %q, primary: bench-bot, secondary: [slow-bot], tokens: {bench-bot: {token_env: BENCH_TOKEN}, slow-bot: {token_env: BENCH_TOKEN}}}\n", p)
			continue
		}
		fmt.Fprintf(&pages, "  - {id: %q, primary: bench-bot, tokens: {bench-bot: {token_env: BENCH_TOKEN}}}\n", p)
	}
	slowApp := ""
	if t.SlowURL != "" {
		slowApp = fmt.Sprintf(`  - name: slow-bot
    app_id: "623456789012345"
    secret_env: BENCH_SECRET
    verify_token_env: BENCH_VERIFY
    adapter: {type: http, url: %q, secret_env: BENCH_HOOK, standby: true}
`, t.SlowURL)
	}
	maxAttempts := ""
	if t.MaxAttempts > 0 {
		maxAttempts = fmt.Sprintf(", max_attempts: %d", t.MaxAttempts)
	}
	adapter := t.Adapter
	if adapter == "" {
		adapter = "http"
	}
	if t.Batch != "" {
		adapter += ", batch: " + t.Batch
	}
	store := fmt.Sprintf("data: %q", data)
	if t.Schema != "" {
		store = fmt.Sprintf("store: {postgres: {dsn_env: %s, schema: %s}}\ncluster: {secret_env: %s}", PGDSNEnv, t.Schema, ClusterSecretEnv)
	}
	cfg := fmt.Sprintf(`listen: %q
admin: {listen: %q, token_env: BENCH_ADMIN}
%s
graph: {url: "http://127.0.0.1:1"}
log: {level: error}
webhooks: {commit_wait: %s}
delivery: {concurrency: %d, backoff: 50ms, max_backoff: 1s%s}
apps:
  - name: bench-bot
    app_id: %q
    secret_env: BENCH_SECRET
    verify_token_env: BENCH_VERIFY
    adapter: {type: %s, url: %q, secret_env: BENCH_HOOK}
%spages:
%s`, pub, adm, store, t.CommitWait, t.Conns, maxAttempts, BotAppID, adapter, t.BotURL, slowApp, pages.String())
	cfgPath = filepath.Join(dir, "baton.yaml")
	return cfgPath, pub, adm, os.WriteFile(cfgPath, []byte(cfg), 0o600)
}
