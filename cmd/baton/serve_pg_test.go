//go:build unix

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/pgtest"

	"github.com/jackc/pgx/v5"
)

// baton serve with store.postgres keeps its state in the database:
// it migrates the schema, says where the state is, answers from it, and
// holds it alone.
// It needs the throw-away server of scripts/pg.sh (BATON_TEST_PG_DSN);
// without one it skips, loudly, unless CI or BATON_REQUIRE_PG=1 is set.
func TestServeOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t, "./cmd/baton -run Postgres")
	for k, v := range map[string]string{"TEST_ADMIN_TOKEN": "admin-token-0123456789", "TEST_APP_SECRET": "app-secret", "TEST_VERIFY_TOKEN": "verify",
		"TEST_HOOK_SECRET": "hook-secret", "TEST_PAGE_TOKEN": "page-token", "TEST_PG_DSN": dsn} {
		t.Setenv(k, v)
	}
	schema := fmt.Sprintf("serve_%d", time.Now().UnixNano())
	ctx := context.Background()
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			t.Error(err)
		}
	})
	dir := t.TempDir()
	path := filepath.Join(dir, "baton.yaml")
	y := strings.Replace(fmt.Sprintf(reloadYAML, "unused", "1s"), `data: "unused"`,
		fmt.Sprintf("store: {postgres: {dsn_env: TEST_PG_DSN, schema: %s}}", schema), 1)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	outR, outW := io.Pipe()
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- run(runCtx, []string{"serve", "-config", path}, outW, &stderr)
		outW.Close()
	}()
	sc := bufio.NewScanner(outR)
	if !sc.Scan() {
		t.Fatalf("no banner; exit %d: %s", <-done, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	banner := sc.Text()
	if !strings.Contains(banner, "data in postgres (schema "+schema+")") || strings.Contains(banner, dsn) {
		t.Errorf("banner %q: want the store named, never its DSN", banner)
	}
	m := regexp.MustCompile(`admin API on ([0-9.:]+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner %q names no admin address", banner)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+m[1]+"/admin/threads", nil)
	req.Header.Set("Authorization", "Bearer admin-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /admin/threads: %d %s", resp.StatusCode, body)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.schema_migrations`).Scan(&n)
	conn.Close(ctx)
	if err != nil || n == 0 {
		t.Errorf("schema %s not migrated: %d migrations, %v", schema, n, err)
	}
	// A second serve on the same database fails at once: one process per
	// database until shard leases exist.
	var second strings.Builder
	if code := run(ctx, []string{"serve", "-config", path}, io.Discard, &second); code != 1 || !strings.Contains(second.String(), "held by another Baton process") {
		t.Errorf("a second serve on the same schema: exit %d: %s", code, second.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), dsn) {
		t.Error("the log shows the DSN")
	}
}
