package config

import "regexp"

// Store chooses where Baton keeps its state. Without it (the default),
// the bbolt file of data:; with postgres, a PostgreSQL database, and data:
// must not be set: one store, never two.
type Store struct {
	Postgres *Postgres `yaml:"postgres"`
}

// Postgres is a PostgreSQL store (store/postgres): Baton creates and
// migrates its tables in the database the DSN names.
type Postgres struct {
	// DSNEnv names the variable holding the connection string (a
	// postgres:// URL or key=value pairs): it carries the password.
	DSNEnv string `yaml:"dsn_env"`
	DSN    Secret `yaml:"-"`
	// Schema is the schema of Baton's tables (default: the DSN's
	// search_path, usually public), created when missing.
	Schema string `yaml:"schema"`
	// MaxConns bounds the connection pool (default 10).
	MaxConns int `yaml:"max_conns"`

	InlineDSN string `yaml:"dsn"` // refused: use dsn_env
}

// StoreName says where the state is, for a log line or the start banner:
// the data file, or "postgres" and its schema. It never holds the DSN.
func (c *Config) StoreName() string {
	if p := c.Store.Postgres; p != nil {
		if p.Schema != "" {
			return "postgres (schema " + p.Schema + ")"
		}
		return "postgres"
	}
	return c.Data
}

var pgSchemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (v *validator) store(c *Config) {
	p := c.Store.Postgres
	if p == nil {
		if _, set := v.lines["store"]; set {
			v.bad("store", "name a store: postgres: {dsn_env: ...}; leave store out to keep the bbolt file of data:")
		}
		return
	}
	if _, set := v.lines["data"]; set {
		v.bad("data", "names a bbolt file, and store.postgres is set: Baton keeps its state in one store; remove one")
	}
	v.inline("store.postgres.dsn", p.InlineDSN, "store.postgres.dsn_env")
	v.secret("store.postgres.dsn_env", p.DSNEnv, true, &p.DSN)
	if p.Schema != "" && !pgSchemaRE.MatchString(p.Schema) {
		v.bad("store.postgres.schema", "%q: use lower-case letters, digits and underscores, starting with a letter or _", p.Schema)
	}
	if p.MaxConns < 0 || p.MaxConns > 1000 {
		v.bad("store.postgres.max_conns", "%d: want 1 to 1000 (0: the default, 10)", p.MaxConns)
	}
}
