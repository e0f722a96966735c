package handover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

const (
	// parallelJobs bounds the jobs running at once (each may wait on Meta).
	parallelJobs = 8
	// dueBatch bounds the due jobs one pass reads.
	dueBatch = 64
)

// jobOutcome is what running a job decided.
type jobOutcome struct {
	result string
	rearm  time.Time // non-zero: run again then
	err    error
}

// Run runs due jobs, several at once, each job once at a time, until ctx
// ends; it returns once the jobs it started have finished. It never
// spins: a job whose outcome could not be written is held back with
// backoff (it would run again at once, and say its message again), and a
// store that cannot be read is asked again after a backoff.
func (e *Engine) Run(ctx context.Context) error {
	sem := make(chan struct{}, parallelJobs)
	inflight := map[string]bool{}
	held := map[string]heldJob{}
	doneCh := make(chan jobDone, parallelJobs)
	failures := 0 // reads of the store that failed in a row
	for {
		if ctx.Err() != nil { // shutting down: start nothing more, wait for what runs
			for len(inflight) > 0 {
				delete(inflight, (<-doneCh).id)
			}
			return nil
		}
		now := e.d.Clock.Now()
		deadline, runnable, err := e.startDue(ctx, now, sem, inflight, held, doneCh)
		if err != nil {
			failures++
			deadline = now.Add(backoffAfter(failures))
			e.d.Log.Error("due jobs not read", zap.Error(err), zap.Int("failures", failures), zap.Time("retry_at", deadline))
		} else {
			failures = 0
			if runnable && len(inflight) == 0 {
				continue // due jobs beyond the batch just read
			}
		}
		bell := e.d.Jobs.C()
		if failures > 0 {
			bell = nil
		}
		select {
		case <-ctx.Done():
			for len(inflight) > 0 {
				delete(inflight, (<-doneCh).id)
			}
			return nil
		case d := <-doneCh:
			e.finished(d, inflight, held)
		case <-bell:
		case <-clock.At(e.d.Clock, deadline):
		}
	}
}

// heldJob is a job whose outcome could not be written: not run again
// before until.
type heldJob struct {
	until    time.Time
	failures int
}

// jobDone is what a job's goroutine reports.
type jobDone struct {
	id      string
	started time.Time // by the runner's clock: a hold counts from it
	written bool      // the job's outcome is in the store
}

// startDue starts the due jobs that are neither running nor held, as far
// as runners are free, and returns when to look again and whether due
// jobs were left waiting for a runner.
func (e *Engine) startDue(ctx context.Context, now time.Time, sem chan struct{}, inflight map[string]bool, held map[string]heldJob, doneCh chan jobDone) (deadline time.Time, runnable bool, err error) {
	deadline = now.Add(time.Minute)
	var due []store.Job
	var next time.Time
	var ok bool
	if err := e.d.Store.View(func(tx store.ReadTx) error {
		var err error
		if due, err = tx.DueJobs(now, dueBatch); err != nil {
			return err
		}
		next, ok, err = tx.NextJob()
		return err
	}); err != nil {
		return deadline, false, err
	}
	if ok && next.After(now) && next.Before(deadline) {
		deadline = next
	}
	for _, h := range held {
		if h.until.After(now) && h.until.Before(deadline) {
			deadline = h.until
		}
	}
	started := 0
	for _, j := range due {
		id := j.Rule + "|" + j.ThreadKey.String()
		if inflight[id] || held[id].until.After(now) {
			continue
		}
		started++
		select {
		case sem <- struct{}{}:
		default:
			return deadline, false, nil // all runners busy: a finished one wakes the loop
		}
		inflight[id] = true
		go func() {
			defer func() { <-sem }()
			doneCh <- jobDone{id: id, started: now, written: e.runJob(ctx, j)}
		}()
	}
	// More may be due beyond the batch; a batch of jobs all held or
	// running is no reason to read again at once.
	return deadline, started > 0 && len(due) == dueBatch, nil
}

// finished notes a job's end: one whose outcome was not written is held
// back with backoff.
func (e *Engine) finished(d jobDone, inflight map[string]bool, held map[string]heldJob) {
	delete(inflight, d.id)
	if d.written {
		delete(held, d.id)
		return
	}
	h := held[d.id]
	h.failures++
	h.until = d.started.Add(backoffAfter(h.failures))
	held[d.id] = h
}

// backoffAfter is how long to wait after n failures in a row: doubling
// from 1 s to 1 min.
func backoffAfter(n int) time.Duration { return clock.Doubling(n, time.Second, time.Minute) }

// runJob runs one job and then removes it, or moves it to its next time,
// unless the rule replaced it meanwhile. It reports whether the job's
// outcome is in the store.
func (e *Engine) runJob(ctx context.Context, j store.Job) bool {
	out := e.dispatch(ctx, j)
	if out.err != nil && ctx.Err() != nil {
		return true // shutting down: the job stays and runs at the next start
	}
	if out.err != nil {
		e.d.Errors.Record(recent.Error{Kind: "rule", App: j.App, Page: j.Page, PSID: j.PSID, Message: fmt.Sprintf("rule %s: %v", j.Rule, out.err)})
		if out.result == "" && j.Attempts+1 < jobMaxAttempts {
			out.rearm = e.d.Clock.Now().Add(e.d.Backoff(j.Attempts + 1))
			j.Attempts++
		} else if out.result == "" {
			out.result = failedResult
		}
	}
	if out.result != "" {
		e.d.Metrics.Rules.WithLabelValues(j.Rule, out.result).Inc()
		e.d.Log.Info("rule firing", zap.String("rule", j.Rule), zap.String("result", out.result), zap.String("page", j.Page), zap.String("psid", j.PSID),
			zap.String("app", j.App), zap.String("target", j.Target), zap.Int("attempts", j.Attempts+1))
	}
	err := e.d.Store.Update(context.Background(), func(tx store.Tx) error {
		cur, err := tx.Job(j.ThreadKey, j.Rule)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !cur.Created.Equal(j.Created)) {
			return nil // replaced while it ran: the new one stands
		}
		if err != nil {
			return err
		}
		if out.rearm.IsZero() {
			return tx.DeleteJob(j.ThreadKey, j.Rule)
		}
		j.At = out.rearm
		return tx.PutJob(j)
	})
	if err != nil {
		e.d.Log.Error("job not updated; it runs again after a backoff", zap.String("rule", j.Rule), zap.String("thread", j.ThreadKey.String()), zap.Error(err))
		return false
	}
	return true
}

// dispatch runs the job's rule.
func (e *Engine) dispatch(ctx context.Context, j store.Job) jobOutcome {
	p := e.d.Topology.Page(j.Page)
	if p == nil || p.Rules == nil {
		return jobOutcome{result: skippedResult} // the page or its rules left the config
	}
	switch j.Rule {
	case RuleEscalate, RuleEntry:
		return e.runHandTo(ctx, p, j)
	case RuleHours:
		return e.runClosedMessage(ctx, p, j)
	case RuleRequests:
		return e.runApprove(ctx, p, j)
	case RuleReturn:
		return e.runReturn(ctx, p, j)
	case RuleFailover:
		return e.runFailover(ctx, p, j)
	case RuleFailback:
		return e.runFailback(ctx, p, j)
	}
	return jobOutcome{result: skippedResult, err: fmt.Errorf("unknown rule %q", j.Rule)}
}

// retryable: a job's call failed in a way a later run may fix: Meta's
// transient errors and calls with no answer, and any failure that is not
// Meta's answer (Baton's own: the intent not written, a store deadlock, a
// lease lost to another replica, which then runs the job). Meta's
// definite refusals are final. Retries are bounded by jobMaxAttempts.
func retryable(err error) bool {
	var me *messenger.Error
	return messenger.IsTransient(err) || messenger.IsUncertain(err) || messenger.IsRateLimited(err) || !errors.As(err, &me)
}

// outcome turns a control call's error into a job outcome: a refusal by
// the state machine means the thread moved on (or a run before a crash
// already did the work).
func outcome(err error) jobOutcome {
	switch {
	case err == nil:
		return jobOutcome{result: firedResult}
	case errors.Is(err, statemachine.ErrRefused):
		return jobOutcome{result: skippedResult}
	case retryable(err):
		return jobOutcome{err: err}
	}
	return jobOutcome{result: failedResult, err: err}
}

func errNoToken(a *topology.App, p *topology.Page) error {
	return fmt.Errorf("app %s has no page token on page %s", a.Name, p.ID)
}
