// Package pgtest is test support only: the throw-away PostgreSQL that
// scripts/pg.sh starts for the tests (BATON_TEST_PG_DSN names it). Never
// a server that happens to be running.
package pgtest

import (
	"os"
	"testing"
)

// DSN is the throw-away server's DSN. Without one the test skips, loudly,
// unless CI or BATON_REQUIRE_PG=1 is set: there a missing server fails
// it. pkg is the package path the message tells how to run, e.g.
// "./store/postgres".
func DSN(tb testing.TB, pkg string) string {
	tb.Helper()
	if dsn := os.Getenv("BATON_TEST_PG_DSN"); dsn != "" {
		return dsn
	}
	how := "run it with `bash scripts/pg.sh go test " + pkg + "`, which starts a throw-away PostgreSQL"
	if os.Getenv("CI") != "" || os.Getenv("BATON_REQUIRE_PG") == "1" {
		tb.Fatal("BATON_TEST_PG_DSN is not set, and CI or BATON_REQUIRE_PG=1 requires the PostgreSQL tests: " + how)
	}
	tb.Skip("!!! SKIPPING a PostgreSQL test: BATON_TEST_PG_DSN is not set; " + how)
	return ""
}
