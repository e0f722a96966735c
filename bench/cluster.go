package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/batonhq/baton/bench/lab"
)

// clusterSize is how many replicas the cluster target runs.
const clusterSize = 3

// cluster measures one run of clusterSize replicas of `baton serve` on
// the database pg, in a schema of the run's own that it drops after,
// behind a round robin in this process (lab.Balancer), up to the bot's
// receipt of everything acknowledged. Each webhook reaches any replica,
// which queues it in PostgreSQL for the owner of its thread's shard, as
// in production; the CPU is the replicas' together, and the database
// server's apart.
func cluster(ctx context.Context, l *lab.Lab, opt Options, run int, rec *Recorder, t lab.Target, pg *lab.Postgres) (s sample, err error) {
	t.Schema = fmt.Sprintf("bench_%d_%d", time.Now().UnixNano(), run)
	defer func() {
		// Even when the run was cut short: the schema is the run's alone.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := pg.DropSchema(dctx, t.Schema); err == nil {
			err = derr
		}
	}()
	cfgPath, _, _, err := lab.WriteConfig(l.Dir, "", opt.Pages, t)
	if err != nil {
		return sample{}, err
	}
	reps, err := l.StartReplicas(ctx, cfgPath, pg.DSN, clusterSize)
	if err != nil {
		return sample{}, err
	}
	defer lab.StopReplicas(reps)
	var publics, admins []string
	var pids []int
	for _, r := range reps {
		publics, admins = append(publics, r.Public), append(admins, r.Admin)
		pids = append(pids, r.Cmd.Process.Pid)
	}
	lb := lab.NewBalancer(publics, opt.Connections)
	defer lb.Close()
	url, stopLB, err := lab.ServeLocal(lb)
	if err != nil {
		return sample{}, err
	}
	defer stopLB()
	rec.Reset()
	opt.URL, opt.RunID = url+"/webhooks/bench-bot", fmt.Sprint("c", run)
	profiled := profile(ctx, reps[0].Admin, t.Profile, opt.Duration) // one replica's: they do the same work
	m := delivering(rec, pids...)
	m.pg, m.admins = pg, admins
	_, s, err = measure(ctx, opt, m)
	if err != nil {
		return s, err
	}
	return s, waitAll(profiled)
}
