package orchestrator_test

import (
	"fmt"
	"testing"
	"time"
)

// The checks of TestClusterChaos must be able to fail: here they run on
// a small run made up by hand, first as it is (every check passes), then
// with one thing broken at a time, which the named check must report.
func TestChaosChecksCatchViolations(t *testing.T) {
	for _, c := range []struct {
		name  string
		check func(*chaosRun)
		bad   func(*chaosRun)
	}{
		{"a lost copy", (*chaosRun).checkLost, func(r *chaosRun) { r.dels = r.dels[1:] }},
		{"out of order", (*chaosRun).checkOrder, func(r *chaosRun) { r.dels[0].at = at(4300) }},
		{"a repeat under another id", (*chaosRun).checkRepeats, func(r *chaosRun) {
			d := r.dels[0]
			d.id, d.at = "dlv_9", at(1250)
			r.dels = append(r.dels, d)
		}},
		{"an acquire before the lease ran out", (*chaosRun).checkLeases, func(r *chaosRun) {
			r.leases = append(r.leases, leaseRow{id: 9, shard: 7, oldOwner: "r1-0000000000000001", oldEpoch: 1, oldExpires: at(100000),
				owner: "r2-0000000000000002", epoch: 2, expires: at(103000), at: at(10000)})
		}},
		{"a write by a replica without the lease", (*chaosRun).checkWrites, func(r *chaosRun) { r.writes[0].writer = "r2.0" }},
		{"a transition without a Graph call", (*chaosRun).checkGraph, func(r *chaosRun) { r.calls[0].ok = false }},
		{"a call Meta applied that Baton never recorded", (*chaosRun).checkGraph, func(r *chaosRun) {
			c := r.calls[1]
			c.call, c.ret = at(5000), at(5010)
			r.calls = append(r.calls, c)
		}},
		{"a call without the lease", (*chaosRun).checkCallsUnderLease, func(r *chaosRun) { r.calls[0].replica = "r2" }},
		{"a delivery without the lease", (*chaosRun).checkDeliveriesUnderLease, func(r *chaosRun) { r.dels[1].via = "r2" }},
		{"a return before the quiet time", (*chaosRun).checkReturns, func(r *chaosRun) { r.calls[1].call = at(2000) }},
		{"a pass never returned", (*chaosRun).checkReturns, func(r *chaosRun) { r.calls = r.calls[:1] }},
		{"a return job run twice", (*chaosRun).checkReturns, func(r *chaosRun) {
			c := r.calls[1]
			c.call, c.ret, c.status, c.ok = at(3500), at(3510), 400, false
			r.calls = append(r.calls, c)
		}},
		{"a late takeover", (*chaosRun).checkTakeover, func(r *chaosRun) { r.leases[len(r.leases)-1].at = at(60000) }},
		{"a stale owner read", (*chaosRun).checkLinearizable, func(r *chaosRun) { r.dels[1].owner = billingID }},
		{"Baton and Meta disagree", (*chaosRun).checkAgreement, func(r *chaosRun) { r.meta[chaosPSID] = billingID }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var failures []string
			r := madeUpRun(t, &failures)
			r.derive()
			c.check(r)
			if len(failures) != 0 {
				t.Fatalf("the run as made up fails: %v", failures)
			}
			r = madeUpRun(t, &failures)
			c.bad(r)
			r.derive()
			if c.check(r); len(failures) == 0 {
				t.Fatal("not reported")
			}
			t.Logf("reported: %s", failures[0])
		})
	}
}

const chaosPSID = "7200000000000000"

var chaosT0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// at is ms milliseconds into the made-up run.
func at(ms int) time.Time { return chaosT0.Add(time.Duration(ms) * time.Millisecond) }

// madeUpRun: r1 holds shard 7, r2 shard 8 until it is killed at 50 s and
// r1 takes it 2.5 s later. The person writes m1 at 1 s: the support bot
// gets it while the thread is idle and passes it to the inbox (1.3 s), the
// return rule gives it back at 3 s; m2 at 4 s reaches the support bot.
func madeUpRun(t *testing.T, failures *[]string) *chaosRun {
	b1 := &chaosBoot{replica: "r1", app: "r1.0", id: "r1-0000000000000001", start: at(-1000)}
	b2 := &chaosBoot{replica: "r2", app: "r2.0", id: "r2-0000000000000002", start: at(-1000), end: at(50000)}
	r := &chaosRun{t: t, ttl: 3 * time.Second, returnAfter: 1500 * time.Millisecond,
		fail:    func(format string, a ...any) { *failures = append(*failures, fmt.Sprintf(format, a...)) },
		procs:   []*chaosProc{{name: "r1", boots: []*chaosBoot{b1}}, {name: "r2", boots: []*chaosBoot{b2}}},
		handed:  map[string]bool{chaosPSID: true},
		appName: map[string]string{supportID: "support-bot", billingID: "inbox-bot", "": ""},
		killed:  b2, killedAt: at(50000), paused: b1, pausedAt: at(60000), resumedAt: at(65000),
		sent:  map[string]sentMsg{"m1": {psid: chaosPSID, seq: 1, at: at(1000)}, "m2": {psid: chaosPSID, seq: 2, at: at(4000)}},
		first: map[string]time.Time{"m1": at(1050), "m2": at(4050)},
		acked: map[copyKey]time.Time{{"m1", "support-bot"}: at(1100), {"m2", "support-bot"}: at(4100)},
		dels: []chaosDelivery{
			{at: at(1200), app: "support-bot", via: "r1", id: "dlv_1", psid: chaosPSID, channel: "messaging", kind: "message", owner: "", mid: "m1"},
			{at: at(4200), app: "support-bot", via: "r1", id: "dlv_2", psid: chaosPSID, channel: "messaging", kind: "message", owner: supportID, mid: "m2"},
		},
		calls: []proxiedCall{
			{replica: "r1", call: at(1300), ret: at(1310), op: "pass_thread_control", psid: chaosPSID, app: "support-bot", target: billingID, status: 200, ok: true},
			{replica: "r1", call: at(3000), ret: at(3010), op: "pass_thread_control", psid: chaosPSID, app: "inbox-bot", target: supportID,
				metadata: "return: no activity for 1.5s", status: 200, ok: true},
		},
		hist: []historyRow{
			{psid: chaosPSID, id: 1, event: "pass", from: "", to: billingID, by: "support-bot", cause: "call", at: at(1320), writer: "r1.0"},
			{psid: chaosPSID, id: 2, event: "pass", from: billingID, to: supportID, by: "rule:return", cause: "rule", at: at(3020), writer: "r1.0"},
		},
		leases: []leaseRow{
			{id: 1, shard: 7, owner: b1.id, epoch: 1, expires: at(100000), at: at(-500)},
			{id: 2, shard: 8, owner: b2.id, epoch: 1, expires: at(52000), at: at(-500)},
			{id: 3, shard: 8, oldOwner: b2.id, oldEpoch: 1, oldExpires: at(52000), owner: b1.id, epoch: 2, expires: at(55500), at: at(52500)},
		},
		writes: []writeRow{
			{tbl: "baton_history", page: pageID, psid: chaosPSID, rowID: 1, shard: 7, writer: "r1.0", owner: b1.id, epoch: 1, expires: at(100000), at: at(1320)},
			{tbl: "baton_history", page: pageID, psid: chaosPSID, rowID: 2, shard: 7, writer: "r1.0", owner: b1.id, epoch: 1, expires: at(100000), at: at(3020)},
		},
		threads: map[string]shardThread{chaosPSID: {shard: 7, owner: supportID}},
		meta:    map[string]string{chaosPSID: supportID},
	}
	return r
}
