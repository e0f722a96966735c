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
// ends; it returns once the jobs it started have finished.
func (e *Engine) Run(ctx context.Context) error {
	sem := make(chan struct{}, parallelJobs)
	inflight := map[string]bool{}
	doneCh := make(chan string, parallelJobs)
	for {
		now := e.d.Clock.Now()
		var due []store.Job
		if err := e.d.Store.View(func(tx store.ReadTx) error {
			var err error
			due, err = tx.DueJobs(now, dueBatch)
			return err
		}); err != nil {
			e.d.Log.Error("due jobs not read", zap.Error(err))
		}
		for _, j := range due {
			id := j.Rule + "|" + j.ThreadKey.String()
			if inflight[id] {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // all runners busy: the next pass takes it
			}
			inflight[id] = true
			go func() {
				defer func() { <-sem; doneCh <- id }()
				e.runJob(ctx, j)
			}()
		}
		deadline := now.Add(time.Minute)
		var next time.Time
		var ok bool
		_ = e.d.Store.View(func(tx store.ReadTx) error {
			var err error
			next, ok, err = tx.NextJob()
			return err
		})
		if ok && next.After(now) && next.Before(deadline) {
			deadline = next
		}
		if ok && !next.After(now) && len(inflight) == 0 {
			continue // due jobs beyond the batch just read
		}
		select {
		case <-ctx.Done():
			for len(inflight) > 0 {
				delete(inflight, <-doneCh)
			}
			return nil
		case id := <-doneCh:
			delete(inflight, id)
		case <-e.d.Jobs.C():
		case <-clock.At(e.d.Clock, deadline):
		}
	}
}

// runJob runs one job and then removes it, or moves it to its next time,
// unless the rule replaced it meanwhile.
func (e *Engine) runJob(ctx context.Context, j store.Job) {
	out := e.dispatch(ctx, j)
	if out.err != nil && ctx.Err() != nil {
		return // shutting down: the job stays and runs at the next start
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
		e.d.Log.Error("job not updated; it runs again", zap.String("rule", j.Rule), zap.String("thread", j.ThreadKey.String()), zap.Error(err))
	}
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

// retryable: a job's Graph call failed in a way a later run may fix.
func retryable(err error) bool {
	return messenger.IsTransient(err) || messenger.IsUncertain(err) || messenger.IsRateLimited(err)
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
