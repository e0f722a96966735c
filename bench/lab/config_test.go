package lab

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/config"
)

// The config Baton is started with is one it accepts, with and without
// the slow bot, and as a replica on PostgreSQL.
func TestWriteConfigIsValid(t *testing.T) {
	env := map[string]string{}
	for _, kv := range Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	env[PGDSNEnv] = "postgres://bench@127.0.0.1:1/bench"
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tg := range []Target{
		{BotURL: "http://127.0.0.1:1", Conns: 4},
		{BotURL: "http://127.0.0.1:1", SlowURL: "http://127.0.0.1:2", Conns: 4, CommitWait: time.Millisecond},
		{BotURL: "http://127.0.0.1:1", Conns: 4, Adapter: "messenger", Batch: "{max: 100, wait: 2ms}"},
		{BotURL: "http://127.0.0.1:1", Conns: 4, Schema: "bench_1"},
	} {
		dir := t.TempDir()
		path, pub, adm, err := WriteConfig(dir, dir+"/baton.db", []string{"100200300400500", "100200300400501", "100200300400502"}, tg)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, lookup)
		if err != nil {
			b, _ := os.ReadFile(path)
			t.Fatalf("%v\n%s", err, b)
		}
		if len(cfg.Pages) != 3 || pub == adm {
			t.Errorf("%d pages, listen %s, admin %s", len(cfg.Pages), pub, adm)
		}
		if replica := cfg.Cluster != nil && cfg.Store.Postgres != nil && cfg.Store.Postgres.Schema == tg.Schema; replica != (tg.Schema != "") {
			t.Errorf("schema %q: cluster %+v, store %+v", tg.Schema, cfg.Cluster, cfg.Store)
		}
	}
}
