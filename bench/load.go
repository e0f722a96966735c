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
	cpu                       time.Duration // of the measured process
	benchCPU                  time.Duration // of this one: the generator and the recording bot
	elapsed                   time.Duration
	maxRSS                    int64
}

// measure sends the load to the process pid (0: none, the bot itself is
// the target) and reads its CPU time and memory, and this process's,
// around it.
func measure(ctx context.Context, pid int, opt Options) (*Result, sample, error) {
	before, _ := lab.ReadProc(pid)
	self, _ := lab.ReadProc(os.Getpid())
	res, err := Run(ctx, opt)
	if err != nil {
		return nil, sample{}, err
	}
	after, _ := lab.ReadProc(pid)
	selfAfter, _ := lab.ReadProc(os.Getpid())
	return res, sample{perSec: res.AckedPerSecond(), ack: res.AckLatency, sent: res.Sent, acked: res.Acked, failed: res.Failed,
		cpu: after.CPU - before.CPU, benchCPU: selfAfter.CPU - self.CPU, elapsed: res.Elapsed, maxRSS: after.MaxRS}, nil
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
	_, s, err := measure(ctx, cmd.Process.Pid, opt)
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
	var profiled []<-chan error
	if t.Profile != "" {
		// The whole run but its last second, so the profiles hold load only.
		profiled = append(profiled,
			lab.FetchProfile(ctx, adm, "profile", t.Profile, opt.Duration-time.Second),
			lab.FetchProfile(ctx, adm, "allocs", t.Profile+".allocs", opt.Duration-time.Second))
	}
	res, s, err := measure(ctx, cmd.Process.Pid, opt)
	if err != nil {
		return s, err
	}
	for _, p := range profiled {
		if err := <-p; err != nil {
			return s, err
		}
	}
	received(rec, res, &s)
	if st, err := lab.ReadProc(cmd.Process.Pid); err == nil {
		s.maxRSS = st.MaxRS
	}
	return s, nil
}

// profileFor profiles the first run only.
func profileFor(run int, path string) string {
	if run > 0 {
		return ""
	}
	return path
}
