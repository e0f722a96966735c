package lab

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is the database replicas share, as the bench sees it: a
// connection of its own, and the server's processes when they run on
// this host.
type Postgres struct {
	DSN    string
	conn   *pgx.Conn
	server int // the postmaster's pid; 0 when the server is not a process here
}

// OpenPostgres connects to dsn and finds the server's processes: the
// parent of this connection's backend, when that is a postgres process
// of this host.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("bench: connect to PostgreSQL: %w", err)
	}
	p := &Postgres{DSN: dsn, conn: conn}
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("bench: PostgreSQL's backend pid: %w", err)
	}
	if st, err := readStat(backend); err == nil && st.comm == "postgres" {
		if pm, err := readStat(st.ppid); err == nil && pm.comm == "postgres" {
			p.server = st.ppid
		}
	}
	return p, nil
}

// Close closes the bench's connection.
func (p *Postgres) Close() { p.conn.Close(context.Background()) }

// DropSchema drops a run's schema and everything in it.
func (p *Postgres) DropSchema(ctx context.Context, schema string) error {
	if _, err := p.conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		return fmt.Errorf("bench: drop schema %s: %w", schema, err)
	}
	return nil
}

// PGCounters are the server's counters a run reads before and after.
type PGCounters struct {
	// CPU is the time of the server's processes (postmaster, backends,
	// WAL writer, checkpointer...), ended ones included; OnHost says
	// whether they could be read (the server runs on this host).
	CPU    time.Duration
	OnHost bool
	// XID is the next transaction id: the difference counts the
	// transactions that wrote. WAL is the WAL's position in bytes.
	XID, WAL int64
}

// Read reads the counters.
func (p *Postgres) Read(ctx context.Context) (PGCounters, error) {
	var c PGCounters
	if err := p.conn.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&c.XID, &c.WAL); err != nil {
		return c, fmt.Errorf("bench: read PostgreSQL's counters: %w", err)
	}
	if p.server != 0 {
		cpu, err := treeCPU(p.server)
		c.CPU, c.OnHost = cpu, err == nil
	}
	return c, nil
}

// stat is what /proc/<pid>/stat says of a process.
type stat struct {
	comm string
	ppid int
	// CPU of its own, and of its children that ended and were waited
	// for (the kernel adds theirs to the parent's cutime and cstime).
	cpu, children time.Duration
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return stat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	// Fields after the command name, which may contain spaces: state,
	// ppid, ..., utime (12th), stime, cutime, cstime.
	f := strings.Fields(s[end+1:])
	if len(f) < 15 {
		return stat{}, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	n := make([]int64, 4)
	for i := range n {
		n[i], _ = strconv.ParseInt(f[11+i], 10, 64)
	}
	ppid, _ := strconv.Atoi(f[1])
	const hz = 100 // USER_HZ on Linux
	tick := func(t int64) time.Duration { return time.Duration(t) * time.Second / hz }
	return stat{comm: s[open+1 : end], ppid: ppid, cpu: tick(n[0] + n[1]), children: tick(n[2] + n[3])}, nil
}

// treeCPU is the CPU time of pid and its children, live and ended: the
// server's backends come and go with the connections, and an ended one's
// time moves into its parent's.
func treeCPU(pid int) (time.Duration, error) {
	root, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	total := root.cpu + root.children
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(child); err == nil && st.ppid == pid {
			total += st.cpu + st.children
		}
	}
	return total, nil
}
