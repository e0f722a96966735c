// Package migrations is the schema of Baton's PostgreSQL store
// (store/postgres): the migrations, NNNN_name.sql, applied in order and
// recorded in schema_migrations, and Apply, which brings a database to
// them. A release adds a file; it never edits one that shipped.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded files in version order.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		raw, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(raw)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %d (%s): versions must run 1, 2, 3... without a gap", m.version, m.name)
		}
	}
	return out, nil
}

// Version is the schema this binary migrates a database to.
func Version() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// SchemaError is a database whose schema a later Baton migrated: this
// binary does not know its tables and must not write to them.
type SchemaError struct {
	Schema       string
	Found, Known int
}

func (e *SchemaError) Error() string {
	where := "the database"
	if e.Schema != "" {
		where = "schema " + e.Schema
	}
	return fmt.Sprintf("postgres: %s has Baton schema version %d, migrated by a later Baton; this binary knows version %d at most: run the later binary, or restore the backup taken before the upgrade", where, e.Found, e.Known)
}

// Apply brings the database's schema (schema, or the connections'
// search_path when "") to this binary's version in one transaction, under
// an advisory lock: replicas starting together take turns, and the second
// finds nothing left to do. A failed migration leaves nothing; a schema a
// later Baton migrated is a *SchemaError.
func Apply(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin the migration: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	// The lock is the transaction's: COMMIT or a dropped connection frees it.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "baton schema_migrations "+schema); err != nil {
		return fmt.Errorf("postgres: lock for the migration: %w", err)
	}
	if schema != "" {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("postgres: create schema %s: %w", schema, err)
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    int PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	var found int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&found); err != nil {
		return fmt.Errorf("postgres: read schema_migrations: %w", err)
	}
	if found > len(ms) {
		return &SchemaError{Schema: schema, Found: found, Known: len(ms)}
	}
	for _, m := range ms[found:] {
		// No arguments: pgx sends the file as one simple query, every
		// statement of it.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("postgres: migration %d (%s): %w", m.version, m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return fmt.Errorf("postgres: record migration %d: %w", m.version, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit the migration: %w", err)
	}
	return nil
}
