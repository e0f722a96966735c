package orchestrator_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checks of TestClusterChaos on thread control: the Graph calls the
// replicas made, as their proxies saw them, against the transitions
// Baton recorded, the leases, the return rule; and porcupine on each
// thread's ownership.

// appIDs are the page's apps by name.
var appIDs = map[string]string{"support-bot": supportID, "inbox-bot": billingID}

// ownerAfter is who owns the thread once Meta applied c.
func ownerAfter(c proxiedCall) string {
	switch c.op {
	case "take_thread_control":
		return appIDs[c.app]
	case "release_thread_control":
		return ""
	}
	if c.target == "" {
		return supportID // a pass to the default app
	}
	return c.target
}

// byThread groups the successful thread-control calls and the
// transitions (history entries that moved the owner) by thread, in order.
func (r *chaosRun) byThread() (calls map[string][]proxiedCall, trans map[string][]historyRow) {
	calls, trans = map[string][]proxiedCall{}, map[string][]historyRow{}
	for _, c := range r.calls {
		if c.ok {
			calls[c.psid] = append(calls[c.psid], c)
		}
	}
	for _, h := range r.hist {
		if h.ignored == "" && h.from != h.to {
			trans[h.psid] = append(trans[h.psid], h)
		}
	}
	return calls, trans
}

// byBaton is a cause of a transition Baton made by a call of its own.
func byBaton(cause string) bool { return cause == "call" || cause == "rule" || cause == "admin" }

// 5a. One Graph call per recorded transition. Per thread, in order, each
// transition of cause call, rule or admin is matched to the next
// successful thread-control call of the same op and resulting owner made
// before it committed; none may be left without one. A successful call
// matched by none is one whose outcome its replica never recorded (a
// kill or a pause cut it off, or the handover webhook landed first): a
// transition of cause reconcile or webhook to its owner must follow it,
// before the thread's next successful call.
func (r *chaosRun) checkGraph() {
	v := r.violations("graph calls")
	calls, trans := r.byThread()
	causes := map[string]int{}
	matched, cutOff, cutByFault, refused := 0, 0, 0, 0
	for _, c := range r.calls {
		if c.threadControl() && !c.ok {
			refused++
		}
	}
	for psid, hs := range trans {
		cs := calls[psid]
		used := make([]bool, len(cs))
		next := 0
		for _, h := range hs {
			causes[h.cause]++
			if !byBaton(h.cause) {
				continue
			}
			i := next
			for ; i < len(cs); i++ {
				if strings.TrimSuffix(cs[i].op, "_thread_control") == h.event && ownerAfter(cs[i]) == h.to && cs[i].call.Before(h.at) {
					break
				}
			}
			if i == len(cs) {
				v.add("thread %s: transition %d (%s to %s by %s, %s) has no Graph call Meta applied", psid, h.id, h.event, r.appName[h.to], h.by, h.cause)
				continue
			}
			used[i], next, r.matched[h.id] = true, i+1, cs[i]
			matched++
		}
		for i, c := range cs {
			if used[i] {
				continue
			}
			cutOff++
			r.cutOff = append(r.cutOff, c)
			if r.faulted(c) {
				cutByFault++
			}
			end := time.Time{}
			if i+1 < len(cs) {
				end = cs[i+1].call
			}
			found := false
			for _, h := range hs {
				if !byBaton(h.cause) && h.to == ownerAfter(c) && h.at.After(c.call) && (end.IsZero() || h.at.Before(end)) {
					found = true
					break
				}
			}
			if !found {
				v.add("thread %s: %s, applied by Meta, never recorded", psid, c.describe())
			}
		}
	}
	for psid, cs := range calls {
		if _, ok := trans[psid]; !ok {
			for _, c := range cs {
				v.add("thread %s: %s, applied by Meta, and the thread has no transition", psid, c.describe())
			}
		}
	}
	r.t.Logf("5a. graph: %d transitions (%s), %d matched one-to-one to a thread-control call Meta applied; %d applied calls cut off and recorded by reconcile or webhook (%d of them by the kill or the pause); %d refused by Meta; %d violations",
		total(causes), causeList(causes), matched, cutOff, cutByFault, refused, v.n)
}

func total(m map[string]int) int {
	n := 0
	for _, k := range m {
		n += k
	}
	return n
}

func causeList(m map[string]int) string {
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// faulted says whether c's replica was killed or paused within 5 s of it.
func (r *chaosRun) faulted(c proxiedCall) bool {
	near := func(b *chaosBoot, at time.Time) bool {
		return b != nil && b.replica == c.replica && !at.Before(c.call.Add(-time.Second)) && at.Before(c.call.Add(5*time.Second))
	}
	return near(r.killed, r.killedAt) || near(r.paused, r.pausedAt)
}

// inFlight is how close to SIGCONT an act of the paused replica without
// its lease may reach the Graph API or a bot and still be one it began
// before SIGSTOP: past its last check of the lease (threads asks Owns
// just before a Graph call, the dispatcher just before a request), frozen
// there, and sent as the process resumed. No lease can stop those; any
// later act is the replica not noticing that its lease ran out.
const inFlight = 100 * time.Millisecond

// frozenAct says whether an act of boot b at t, without the lease, is one
// the pause froze in flight (reported, not failed).
func (r *chaosRun) frozenAct(b *chaosBoot, t time.Time) bool {
	return b == r.paused && t.After(r.resumedAt.Add(-inFlight/2)) && t.Before(r.resumedAt.Add(inFlight))
}

// 5b. No Graph call about a thread came from a replica that did not hold
// the thread's shard's lease when the call reached the Graph API, by the
// database's lease log; in particular none from the paused replica
// between its leases' end and its next acquire of each shard, but for
// calls frozen in flight by the pause (frozenAct).
func (r *chaosRun) checkCallsUnderLease() {
	v := r.violations("calls under the lease")
	checked, fromPaused, frozen := 0, 0, 0
	for _, c := range r.calls {
		th, ok := r.threads[c.psid]
		if c.psid == "" || !ok {
			continue
		}
		checked++
		b := r.bootAt(c.replica, c.call)
		if b == nil {
			v.add("%s: no boot of %s ran then", c.describe(), c.replica)
			continue
		}
		if b == r.paused && c.call.After(r.pausedAt) && c.call.Before(r.resumedAt.Add(2*time.Second)) {
			fromPaused++
		}
		if _, ok := r.holderAt(th.shard, b.id, c.call); !ok {
			if r.frozenAct(b, c.call) {
				frozen++
				r.t.Logf("5b. frozen in flight by the pause, sent at SIGCONT: %s", c.describe())
				continue
			}
			v.add("%s: %s did not hold shard %d then (%s)", c.describe(), b.id, th.shard, r.periodsNear(th.shard, c.call))
		}
	}
	r.t.Logf("5b. calls under the lease: %d Graph calls about a thread, each from its shard's holder but %d; %d from the paused replica from SIGSTOP to 2 s after SIGCONT, %d of them frozen in flight without the lease",
		checked, v.n, fromPaused, frozen)
}

// 5c. Like its Graph calls, a replica's deliveries to the bots are acts
// for a thread that the database cannot fence: none may come from a
// replica not holding the thread's shard's lease when it reached the bot,
// but for deliveries frozen in flight by the pause (frozenAct).
func (r *chaosRun) checkDeliveriesUnderLease() {
	v := r.violations("deliveries under the lease")
	checked, frozen := 0, 0
	for _, d := range r.dels {
		th, ok := r.threads[d.psid]
		if !ok {
			continue
		}
		checked++
		b := r.bootAt(d.via, d.at)
		if b == nil {
			v.add("delivery %s of %s to %s at %s: no boot of %s ran then", d.id, d.psid, d.app, d.at.Format(time.StampMicro), d.via)
			continue
		}
		if _, ok := r.holderAt(th.shard, b.id, d.at); !ok {
			what := fmt.Sprintf("delivery %s (%s %s) of %s to %s at %s: %s did not hold shard %d then (%s)", d.id, d.kind, d.mid, d.psid, d.app,
				d.at.Format(time.StampMicro), b.id, th.shard, r.periodsNear(th.shard, d.at))
			if r.frozenAct(b, d.at) {
				frozen++
				r.t.Logf("5c. frozen in flight by the pause, sent at SIGCONT: %s", what)
				continue
			}
			v.add("%s", what)
		}
	}
	r.t.Logf("5c. deliveries under the lease: %d deliveries, each from its shard's holder but %d; %d frozen in flight by the pause without the lease", checked, v.n, frozen)
}

// periodsNear describes the leases of shard around t, for a failure.
func (r *chaosRun) periodsNear(shard int, t time.Time) string {
	var parts []string
	for _, p := range r.periods[shard] {
		if p.until.After(t.Add(-10*time.Second)) && p.from.Before(t.Add(10*time.Second)) {
			parts = append(parts, fmt.Sprintf("%s@%d %s-%s", p.owner, p.epoch, p.from.Format("15:04:05.000000"), p.until.Format("15:04:05.000000")))
		}
	}
	return strings.Join(parts, "; ")
}

// 6. Every return job fired once: on each handed thread the support
// bot's passes to the inbox and the rule's returns alternate, each pass
// followed by exactly one return that Meta applied, none before the
// rule's quiet time; every other thread saw no thread-control call at
// all. A rule call Meta refused is a job run twice, which fails, unless
// the first run's call was cut off (5a: applied by Meta, its outcome
// lost with its replica, killed or paused) less than 15 s before: then
// the shard's next owner ran the job again before it reconciled the
// thread, and Meta refused; those are reported.
func (r *chaosRun) checkReturns() {
	v := r.violations("returns")
	calls, _ := r.byThread()
	passes, returns, ruleRefused, rerun, threads := 0, 0, 0, 0, 0
	shortest, longest := time.Duration(0), time.Duration(0)
	for _, c := range r.calls {
		if !c.threadControl() || c.ok || !strings.HasPrefix(c.metadata, "return:") {
			continue
		}
		ruleRefused++
		if i := slices.IndexFunc(r.cutOff, func(p proxiedCall) bool {
			return p.psid == c.psid && strings.HasPrefix(p.metadata, "return:") && r.faulted(p) && p.call.Before(c.call) && c.call.Sub(p.call) < 15*time.Second
		}); i >= 0 {
			rerun++
			r.t.Logf("6. a return run again after its first run's call was cut off: %s, after %s", c.describe(), r.cutOff[i].describe())
			continue
		}
		v.add("a rule's call refused (the job run twice): %s", c.describe())
	}
	for psid, cs := range calls {
		if !r.handed[psid] {
			v.add("thread %s is not handed, yet saw %d thread-control calls", psid, len(cs))
			continue
		}
		threads++
		var pass *proxiedCall
		for i := range cs {
			c := &cs[i]
			isReturn := strings.HasPrefix(c.metadata, "return:")
			switch {
			case !isReturn && c.app == "support-bot" && c.target == billingID:
				if pass != nil {
					v.add("thread %s: a second pass to the inbox before a return: %s", psid, c.describe())
				}
				pass = c
				passes++
			case isReturn && c.app == "inbox-bot" && ownerAfter(*c) == supportID:
				if pass == nil {
					v.add("thread %s: a return without a pass before it: %s", psid, c.describe())
					continue
				}
				quiet := c.call.Sub(pass.ret)
				if quiet < r.returnAfter {
					v.add("thread %s: returned %s after the pass, before the rule's %s", psid, quiet, r.returnAfter)
				}
				if shortest == 0 || quiet < shortest {
					shortest = quiet
				}
				longest = max(longest, quiet)
				pass = nil
				returns++
			default:
				v.add("thread %s: an unexpected call %s", psid, c.describe())
			}
		}
		if pass != nil {
			v.add("thread %s: the pass at %s was never returned", psid, pass.call.Format(time.StampMilli))
		}
	}
	r.t.Logf("6. returns: %d passes to the inbox on %d threads, %d returns by the rule (after %s to %s), %d rule calls refused (%d of them run again after a cut-off first run); %d violations",
		passes, threads, returns, shortest.Round(time.Millisecond), longest.Round(time.Millisecond), ruleRefused, rerun, v.n)
}

// ownerOp is an operation on a thread's owner: a transition (write) or a
// delivery's thread.owner (read).
type ownerOp struct {
	write bool
	owner string // the new owner, or the one read (app id, "" idle)
	what  string
}

// ownerModel is a register holding a thread's owner, idle at first.
var ownerModel = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(ownerOp)
		if in.write {
			return true, in.owner
		}
		return in.owner == state.(string), state
	},
	DescribeOperation: func(input, output any) string { return input.(ownerOp).what },
}

// 8. Porcupine finds each thread's ownership linearizable, as a register
// of Baton's record of the owner. The writes are the transitions: one
// made by a call spans from the call reaching the Graph API to its
// transaction's COMMIT, any other is at its COMMIT. The reads are what
// each message's first delivery carried as thread.owner (Baton's record
// when it routed the message), spanning from the message's creation at
// Meta to its arrival at the bot.
func (r *chaosRun) checkLinearizable() {
	v := r.violations("linearizable")
	ops := map[string][]porcupine.Operation{}
	_, trans := r.byThread()
	writes, reads := 0, 0
	for psid, hs := range trans {
		for _, h := range hs {
			call := h.at
			if c, ok := r.matched[h.id]; ok {
				call = c.call
			}
			what := fmt.Sprintf("%s to %s (%s, committed %s)", h.event, r.appName[h.to], h.cause, h.at.Format("15:04:05.000000"))
			ops[psid] = append(ops[psid], porcupine.Operation{ClientId: 0, Input: ownerOp{write: true, owner: h.to, what: what},
				Call: call.UnixNano(), Return: h.at.UnixNano()})
			writes++
		}
	}
	first, _ := r.firstDeliveries()
	for k, d := range first {
		s, ok := r.sent[k.mid]
		if !ok {
			continue
		}
		what := fmt.Sprintf("seq %d to %s read %s", s.seq, k.app, r.appName[d.owner])
		ops[d.psid] = append(ops[d.psid], porcupine.Operation{ClientId: 1, Input: ownerOp{owner: d.owner, what: what},
			Call: s.at.UnixNano(), Return: d.at.UnixNano()})
		reads++
	}
	results := map[porcupine.CheckResult]int{}
	for psid, h := range ops {
		res := porcupine.CheckOperationsTimeout(ownerModel, h, 5*time.Second)
		results[res]++
		if res != porcupine.Ok {
			v.add("thread %s: %s\n%s", psid, res, describeOps(h))
		}
	}
	r.t.Logf("8. linearizable: %d threads, %d writes and %d reads of the owner; porcupine: %d ok, %d illegal, %d unknown",
		len(ops), writes, reads, results[porcupine.Ok], results[porcupine.Illegal], results[porcupine.Unknown])
}

// describeOps lists a thread's operations in order of their start.
func describeOps(h []porcupine.Operation) string {
	h = append([]porcupine.Operation(nil), h...)
	sort.Slice(h, func(i, j int) bool { return h[i].Call < h[j].Call })
	var b strings.Builder
	for _, op := range h {
		fmt.Fprintf(&b, "  %s .. %s  %s\n", time.Unix(0, op.Call).Format("15:04:05.000000"), time.Unix(0, op.Return).Format("15:04:05.000000"), op.Input.(ownerOp).what)
	}
	return b.String()
}
