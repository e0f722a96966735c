package lab

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/batonhq/baton/orchestrator/cluster"
)

// The variables a replica's config names (WriteConfig with Target.Schema):
// the database's DSN, and the secret the replicas sign forwarded calls
// with (Env has it).
const (
	PGDSNEnv         = "BENCH_PG_DSN"
	ClusterSecretEnv = "BENCH_CLUSTER"
	clusterSecret    = "bench-cluster-secret-0123456789"
)

// Replica is one `baton serve` of several on one database.
type Replica struct {
	Name                    string
	Cmd                     *exec.Cmd
	Public, Admin, Internal string // host:port
}

// StartReplicas starts n replicas, r1 to rn, of cfgPath (a config
// WriteConfig wrote with Target.Schema) on the database dsn, each on
// ports of its own and with a log of its own (r1.log, ...), one after the
// other as each is ready; then waits until the shards have settled over
// all of them (see settle). On an error it stops those it started.
func (l *Lab) StartReplicas(ctx context.Context, cfgPath, dsn string, n int) ([]*Replica, error) {
	var reps []*Replica
	for i := range n {
		r := &Replica{Name: fmt.Sprintf("r%d", i+1)}
		for _, a := range []*string{&r.Public, &r.Admin, &r.Internal} {
			addr, err := FreeAddr()
			if err != nil {
				StopReplicas(reps)
				return nil, err
			}
			*a = addr
		}
		args := []string{"serve", "-config", cfgPath, "-replica", r.Name, "-listen", r.Public, "-admin-listen", r.Admin, "-internal-listen", r.Internal}
		cmd, err := l.Child(ctx, args, append(Env(), PGDSNEnv+"="+dsn), "http://"+r.Admin+"/readyz", r.Name+".log")
		if err != nil {
			StopReplicas(reps)
			return nil, fmt.Errorf("replica %s: %w", r.Name, err)
		}
		r.Cmd = cmd
		reps = append(reps, r)
	}
	if err := settle(ctx, reps); err != nil {
		StopReplicas(reps)
		return nil, err
	}
	return reps, nil
}

// StopReplicas stops the replicas together; each hands its shards off on
// SIGTERM.
func StopReplicas(reps []*Replica) {
	var wg sync.WaitGroup
	for _, r := range reps {
		wg.Go(func() { Stop(r.Cmd) })
	}
	wg.Wait()
}

// settleFor is how long the shards must stay where they are for settle:
// longer than a replica's round (each second), in which it learns of a
// replica that joined and hands it its shards, or takes those handed to
// it.
const settleFor = 1500 * time.Millisecond

// settle waits until the cluster, as GET /admin/cluster on the first
// replica has it, holds every shard, has every replica live with a share
// of them, and has moved none for settleFor. Until then the replicas
// started last are still being handed their shards, and a run measured
// meanwhile would pay for the hand-offs (each rebuilds a replica's parts).
func settle(ctx context.Context, reps []*Replica) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	var last []int
	var since time.Time
	var st cluster.Status
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var err error
		st, err = readCluster(ctx, client, reps[0].Admin)
		if err != nil {
			return err
		}
		counts := make([]int, 0, len(reps))
		for _, r := range st.Replicas {
			if r.Live && r.ShardCount > 0 {
				counts = append(counts, r.ShardCount)
			}
		}
		switch {
		case st.Shards == 0 || st.Held != st.Shards || st.ReplicasLive != len(reps) || len(counts) != len(reps):
			last = nil
		case !slices.Equal(counts, last):
			last, since = counts, time.Now()
		case time.Since(since) >= settleFor:
			return nil
		}
		time.Sleep(50 * time.Millisecond) // the leases are the database's: nothing announces them
	}
	return fmt.Errorf("bench: the shards did not settle over %d replicas in 60 s: %d of %d held, %d replicas live", len(reps), st.Held, st.Shards, st.ReplicasLive)
}

// readCluster reads GET /admin/cluster of the admin listener adm.
func readCluster(ctx context.Context, client *http.Client, adm string) (cluster.Status, error) {
	var st cluster.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adm+"/admin/cluster", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	resp, err := client.Do(req)
	if err != nil {
		return st, fmt.Errorf("bench: GET /admin/cluster: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("bench: GET /admin/cluster: %s", resp.Status)
	}
	if err := jsonv2.UnmarshalRead(resp.Body, &st); err != nil {
		return st, fmt.Errorf("bench: GET /admin/cluster: %w", err)
	}
	return st, nil
}
