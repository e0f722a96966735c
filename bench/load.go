package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/bench/lab"
)

// slowBot measures the same load with and without a second bot that is
// slow, to show that a slow bot holds up neither ingress nor others.
func slowBot(ctx context.Context, l *lab.Lab, c Config, opt Options, botURL string, rec *Recorder) error {
	slow, fast := c.SlowBot, c.BotDelay
	if fast == 0 {
		fast = slow / 10
	}
	rec.Delay = fast
	slowRec := NewRecorder()
	slowRec.Delay = slow
	slowURL, stopSlow, err := lab.ServeLocal(slowRec)
	if err != nil {
		return err
	}
	defer stopSlow()
	without, err := baton(ctx, l, opt, 100, rec, lab.Target{BotURL: botURL, Conns: c.Connections})
	if err != nil {
		return err
	}
	with, err := baton(ctx, l, opt, 101, rec, lab.Target{BotURL: botURL, SlowURL: slowURL, Conns: c.Connections})
	if err != nil {
		return err
	}
	slowBotReport(c.Stdout, opt, fast, slow, without, with)
	return nil
}

// sample is one run against one target.
type sample struct {
	perSec                    float64 // acknowledged per second
	delivered                 int     // acknowledged messages the bot received
	deliveredPerSec           float64 // of them, from the run's start to the last first arrival
	ack, e2e                  Latencies
	sent, acked, failed       int
	lost, dups, order, mismat int
	requests                  int           // to the bot
	cpu                       time.Duration // of the measured processes
	benchCPU                  time.Duration // of this one: the generator and the recording bot (and the cluster's balancer)
	elapsed                   time.Duration
	maxRSS                    int64 // of the measured processes, their peaks summed
	// Of the database's server (cluster): its processes' CPU, when
	// dbOnHost (it runs on this host), the transactions that wrote and the
	// WAL bytes written.
	dbCPU          time.Duration
	dbOnHost       bool
	dbXacts, dbWAL int64
	store          lab.StoreStats // of Baton's group commits, every replica's together
}

// meter is what a run reads around its load, besides this process: the
// measured processes, the database's server when there is one, and how
// to wait for the deliveries.
type meter struct {
	pids   []int
	admins []string // the admin listeners of the Batons among them, for their store's counters
	pg     *lab.Postgres
	// drain waits until the bot received what was acknowledged and adds
	// it to the sample (nil: nothing is delivered). The CPU is read after
	// it: delivering what was acknowledged is part of what an event costs.
	drain func(*Result, *sample)
}

// delivering is a meter of pids whose deliveries reach rec.
func delivering(rec *Recorder, pids ...int) meter {
	return meter{pids: pids, drain: func(res *Result, s *sample) { received(rec, res, s) }}
}

// reading is what a meter reads before and after a run.
type reading struct {
	procs []lab.ProcStats
	self  lab.ProcStats
	store lab.StoreStats
	db    lab.PGCounters
}

func (m meter) read(ctx context.Context) (reading, error) {
	var r reading
	for _, adm := range m.admins {
		st, err := lab.ReadStoreStats(ctx, adm)
		if err != nil {
			return r, err
		}
		r.store = r.store.Add(st)
	}
	if m.pg != nil {
		var err error
		if r.db, err = m.pg.Read(ctx); err != nil {
			return r, err
		}
	}
	r.procs = make([]lab.ProcStats, len(m.pids))
	for i, pid := range m.pids {
		r.procs[i], _ = lab.ReadProc(pid)
	}
	r.self, _ = lab.ReadProc(os.Getpid())
	return r, nil
}

// measure sends the load as opt says and reads the CPU time and memory
// of m's processes, and this process's, from before it to the end of the
// drain.
func measure(ctx context.Context, opt Options, m meter) (*Result, sample, error) {
	r0, err := m.read(ctx)
	if err != nil {
		return nil, sample{}, err
	}
	res, err := Run(ctx, opt)
	if err != nil {
		return nil, sample{}, err
	}
	s := sample{perSec: res.AckedPerSecond(), ack: res.AckLatency, sent: res.Sent, acked: res.Acked, failed: res.Failed, elapsed: res.Elapsed}
	if m.drain != nil {
		m.drain(res, &s)
	}
	r1, err := m.read(ctx)
	if err != nil {
		return nil, sample{}, err
	}
	for i, st := range r1.procs {
		s.cpu += st.CPU - r0.procs[i].CPU
		s.maxRSS += st.MaxRS
	}
	s.benchCPU = r1.self.CPU - r0.self.CPU
	s.store = r1.store.Sub(r0.store)
	if m.pg != nil {
		s.dbXacts, s.dbWAL = r1.db.XID-r0.db.XID, r1.db.WAL-r0.db.WAL
		if s.dbOnHost = r0.db.OnHost && r1.db.OnHost; s.dbOnHost {
			s.dbCPU = r1.db.CPU - r0.db.CPU
		}
	}
	return res, s, nil
}

// received waits for the bot to receive what was acknowledged (or a
// minute) and adds what it got to s.
func received(rec *Recorder, res *Result, s *sample) {
	deadline := time.Now().Add(60 * time.Second)
	for rec.Missing(res.AckedMids) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.lost = rec.Missing(res.AckedMids)
	s.e2e = rec.EndToEnd(res.AckedMids)
	s.dups, s.order, s.mismat, s.requests = rec.Duplicates, rec.OutOfOrder, rec.Mismatched, rec.Requests
	var last time.Time
	s.delivered, last = rec.Delivered(res.AckedMids)
	if d := last.Sub(res.Start); d > 0 {
		s.deliveredPerSec = float64(s.delivered) / d.Seconds()
	}
}

// baseline measures one run of `baton bench-baseline`.
func baseline(ctx context.Context, l *lab.Lab, opt Options, run int) (sample, error) {
	addr, err := lab.FreeAddr()
	if err != nil {
		return sample{}, err
	}
	cmd, err := l.Child(ctx, []string{"bench-baseline", "-listen", addr}, []string{lab.SecretEnv + "=" + lab.AppSecret},
		"http://"+addr+"/healthz", "baseline.log")
	if err != nil {
		return sample{}, err
	}
	defer lab.Stop(cmd)
	opt.URL, opt.RunID = "http://"+addr+"/webhooks/bench-bot", fmt.Sprint("b", run)
	_, s, err := measure(ctx, opt, meter{pids: []int{cmd.Process.Pid}})
	return s, err
}

// baton measures one run of `baton serve` on a fresh data file, up to the
// bot's receipt of everything acknowledged (or a minute).
func baton(ctx context.Context, l *lab.Lab, opt Options, run int, rec *Recorder, t lab.Target) (sample, error) {
	cfgPath, pub, adm, err := lab.WriteConfig(l.Dir, filepath.Join(l.Dir, fmt.Sprintf("baton-%d.db", run)), opt.Pages, t)
	if err != nil {
		return sample{}, err
	}
	cmd, err := l.Serve(ctx, cfgPath, adm)
	if err != nil {
		return sample{}, err
	}
	defer lab.Stop(cmd)
	rec.Reset()
	opt.URL, opt.RunID = "http://"+pub+"/webhooks/bench-bot", fmt.Sprint("t", run)
	profiled := profile(ctx, adm, t.Profile, opt.Duration)
	m := delivering(rec, cmd.Process.Pid)
	m.admins = []string{adm}
	_, s, err := measure(ctx, opt, m)
	if err != nil {
		return s, err
	}
	return s, waitAll(profiled)
}

// profileFor profiles the first run only.
func profileFor(run int, path string) string {
	if run > 0 {
		return ""
	}
	return path
}

// profile starts fetching CPU and allocation profiles of the Baton whose
// admin listener is adm to path and path.allocs, of the whole run but its
// last second, so that they hold load only; nothing when path is empty.
func profile(ctx context.Context, adm, path string, run time.Duration) []<-chan error {
	if path == "" {
		return nil
	}
	return []<-chan error{lab.FetchProfile(ctx, adm, "profile", path, run-time.Second),
		lab.FetchProfile(ctx, adm, "allocs", path+".allocs", run-time.Second)}
}

// waitAll waits for the profiles and returns the first error.
func waitAll(profiled []<-chan error) error {
	var first error
	for _, p := range profiled {
		if err := <-p; err != nil && first == nil {
			first = err
		}
	}
	return first
}
