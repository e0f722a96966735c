package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/pgtest"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/batonhq/baton/bench/lab"
)

// Without a database the cluster target says what to set, before it
// starts anything.
func TestClusterTargetNeedsPostgres(t *testing.T) {
	err := Measure(context.Background(), Config{Executable: "/nonexistent/baton", Targets: []string{peerBaton, peerCluster}, Runs: 1})
	if !errors.Is(err, errNoPostgres) {
		t.Fatalf("got %v, want %v", err, errNoPostgres)
	}
}

// The cluster target runs three replicas on the PostgreSQL of
// scripts/pg.sh behind the balancer: every message acknowledged reaches
// the bot once and in order, the replicas' and the server's CPU are read,
// and the run's schema is gone after it. Without BATON_TEST_PG_DSN it
// skips, loudly, unless CI or BATON_REQUIRE_PG=1 is set.
func TestClusterTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("three replicas on PostgreSQL")
	}
	dsn := pgtest.DSN(t, "./bench -run Cluster")
	defer goleak.VerifyNone(t)
	bin := filepath.Join(t.TempDir(), "baton")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/batonhq/baton/cmd/baton").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx := context.Background()
	l, err := lab.New(bin, "baton-bench-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := NewRecorder()
	rec.HookKey, rec.MetaSecret = []byte("x"), []byte(lab.AppSecret)
	botURL, stopBot, err := lab.ServeLocal(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer stopBot()
	pg, err := lab.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	schemas := func() int {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'bench\_%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := schemas()

	opt := Options{Secret: []byte(lab.AppSecret), Pages: pageIDs(2), AppID: lab.BotAppID, Threads: 20, Connections: 4,
		Rate: 100, Duration: time.Second, TextBytes: 100}
	s, err := cluster(ctx, l, opt, 0, rec, lab.Target{BotURL: botURL, Conns: 4}, pg)
	if err != nil {
		if b, rerr := os.ReadFile(filepath.Join(l.Dir, "r1.log")); rerr == nil {
			t.Logf("r1.log:\n%s", b)
		}
		t.Fatal(err)
	}
	if s.acked < 50 || s.failed != 0 || s.delivered != s.acked || s.lost != 0 || s.dups+s.mismat != 0 || s.order != 0 {
		t.Errorf("acknowledged %d (failed %d), delivered %d, lost %d, repeated %d, out of order %d", s.acked, s.failed, s.delivered, s.lost, s.dups+s.mismat, s.order)
	}
	if s.cpu <= 0 || s.dbXacts <= 0 || s.dbWAL <= 0 || s.dbOnHost && s.dbCPU <= 0 {
		t.Errorf("replicas' CPU %s; the server's: on this host %v, CPU %s, %d transactions, %d WAL bytes", s.cpu, s.dbOnHost, s.dbCPU, s.dbXacts, s.dbWAL)
	}
	// Each message was accepted, routed and marked delivered in some
	// replica's group commits.
	if st := s.store; st.Commits <= 0 || st.Writes < st.Commits || st.Writes < 2*float64(s.acked) || st.Time <= 0 {
		t.Errorf("the replicas' group commits: %+v for %d messages", st, s.acked)
	}
	if after := schemas(); after != before {
		t.Errorf("bench schemas: %d before the run, %d after", before, after)
	}
}
