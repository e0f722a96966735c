package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/lab"
)

// chaos runs load at a fixed rate while Baton is killed with SIGKILL at
// random moments and restarted on the same file. The sender resends what
// got no 200, as Meta does. It reports what was acknowledged, delivered,
// lost and repeated, and the restart-to-ready times.
func chaos(ctx context.Context, c Config) error {
	rate := c.Rate
	if rate == 0 {
		rate = 500
	}
	l, err := lab.New(c.Executable, "baton-chaos-")
	if err != nil {
		return err
	}
	defer l.Close()
	rec := NewRecorder()
	botURL, stopBot, err := lab.ServeLocal(rec)
	if err != nil {
		return err
	}
	defer stopBot()
	pages := pageIDs(c.Pages)
	cfgPath, pub, adm, err := lab.WriteConfig(l.Dir, filepath.Join(l.Dir, "baton.db"), pages, lab.Target{BotURL: botURL, Conns: c.Connections})
	if err != nil {
		return err
	}
	start := func() (*exec.Cmd, time.Duration, error) {
		t0 := time.Now()
		cmd, err := l.Serve(ctx, cfgPath, adm)
		return cmd, time.Since(t0), err
	}
	cmd, _, err := start()
	if err != nil {
		return err
	}
	// Load for as long as the kills take, plus a quiet tail.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	type outcome struct {
		res *Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Run(loadCtx, Options{URL: "http://" + pub + "/webhooks/bench-bot", Secret: []byte(lab.AppSecret), Pages: pages,
			AppID: lab.BotAppID, Threads: c.Threads, Connections: c.Connections, Rate: rate, Duration: time.Hour, TextBytes: 800, RunID: "chaos", Resend: true})
		done <- outcome{res, err}
	}()
	var readies []time.Duration
	for k := range c.Chaos {
		time.Sleep(300*time.Millisecond + time.Duration(rand.N(1200))*time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		var ready time.Duration
		if cmd, ready, err = start(); err != nil {
			stopLoad()
			<-done
			return fmt.Errorf("restart %d: %w", k+1, err)
		}
		readies = append(readies, ready)
		fmt.Fprintf(c.Stderr, "kill %d: back in %s\n", k+1, ready.Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second)
	stopLoad()
	out := <-done
	if out.err != nil {
		lab.Stop(cmd)
		return out.err
	}
	res := out.res
	deadline := time.Now().Add(60 * time.Second)
	for rec.Missing(res.AckedMids) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	lab.Stop(cmd)
	lost := rec.Missing(res.AckedMids)
	chaosResult{kills: c.Chaos, rate: rate, conns: c.Connections, elapsed: res.Elapsed,
		acked: len(res.AckedMids), delivered: len(res.AckedMids) - lost, lost: lost,
		duplicates: rec.Duplicates, mismatched: rec.Mismatched, outOfOrder: rec.OutOfOrder,
		failed: res.Failed, restart: Summarise(readies)}.report(c.Stdout)
	return nil
}
