package orchestrator_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/bench"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// The checks of TestClusterChaos over what the run recorded. Each logs
// one summary line with its figures and fails the test on its first
// few violations, which it names.

// sentMsg is one message the load sent: its thread, its sequence in the
// thread and when it was created at the platform.
type sentMsg struct {
	psid string
	seq  int
	at   time.Time
}

// chaosEvent is a fault or a restart, for the figures.
type chaosEvent struct {
	name string
	at   time.Time
}

// shardThread is a thread's shard and owner (app id) by Baton's record.
type shardThread = struct {
	shard int
	owner string
}

// leasePeriod is one lease, from its acquire to when it ran out or was
// released, by the database's clock.
type leasePeriod struct {
	owner       string
	epoch       int64
	from, until time.Time
}

type chaosRun struct {
	t                *testing.T
	fail             func(format string, a ...any) // a check's failure: t.Errorf
	ttl, returnAfter time.Duration
	db               chaosDB
	procs            []*chaosProc
	lb               *chaosLB
	handed           map[string]bool
	appName          map[string]string // app id -> name
	mu               sync.Mutex
	sent             map[string]sentMsg // mid -> the message
	killed, paused   *chaosBoot
	killedAt         time.Time
	pausedAt         time.Time
	resumedAt        time.Time
	events           []chaosEvent // the faults and restarts, in order
	dir              string

	// Collected once the run settled.
	calls   []proxiedCall
	dels    []chaosDelivery
	hist    []historyRow
	leases  []leaseRow
	writes  []writeRow
	threads map[string]shardThread
	meta    map[string]string // psid -> Meta's owner, app id ("" idle)
	acked   map[copyKey]time.Time
	first   map[string]time.Time // mid -> first posted to Baton
	periods map[int][]leasePeriod
	matched map[int64]proxiedCall // history id -> the call it records
	cutOff  []proxiedCall         // applied by Meta, recorded by no transition of cause call or rule (5a)
}

func (r *chaosRun) noteSent(mid, psid string, seq int, at time.Time) {
	r.mu.Lock()
	r.sent[mid] = sentMsg{psid: psid, seq: seq, at: at}
	r.mu.Unlock()
}

func (r *chaosRun) allBoots() []*chaosBoot {
	var out []*chaosBoot
	for _, p := range r.procs {
		p.mu.Lock()
		out = append(out, p.boots...)
		p.mu.Unlock()
	}
	return out
}

// mostShards is the replica of procs whose running boot holds the most
// live leases.
func (r *chaosRun) mostShards(procs []*chaosProc) *chaosProc {
	h := r.db.holders(r.t)
	best := procs[0]
	for _, p := range procs[1:] {
		if h[p.current().id] > h[best.current().id] {
			best = p
		}
	}
	return best
}

// waitHeld polls the leases until every shard is held and cond holds.
func (r *chaosRun) waitHeld(cond func(map[string]int) bool, what string) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h := r.db.holders(r.t)
		n := 0
		for _, c := range h {
			n += c
		}
		if n == 256 && cond(h) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("shards not %s in 20 s: %v", what, h)
		}
		time.Sleep(20 * time.Millisecond) // the leases are the database's: polled
	}
}

// pending counts the acknowledged copies not yet delivered to their bot
// and the handed threads not yet back with the support bot, at Meta or in
// Baton.
func (r *chaosRun) pending(p *messengertest.Platform, bots ...*chaosBot) (undelivered, out int) {
	got := map[copyKey]bool{}
	for _, b := range bots {
		for _, d := range b.deliveries() {
			got[copyKey{d.mid, d.app}] = true
		}
	}
	r.lb.mu.Lock()
	for k := range r.lb.acked {
		if !got[k] {
			undelivered++
		}
	}
	r.lb.mu.Unlock()
	if undelivered > 0 {
		return undelivered, len(r.handed)
	}
	threads := r.db.threads(r.t)
	for psid := range r.handed {
		th, _ := p.Thread(pageID, messenger.ID(psid))
		if th.OwnerAppID != nil && *th.OwnerAppID == billingID || threads[psid].owner == billingID {
			out++
		}
	}
	return 0, out
}

// collect reads what the run left: the bots', the proxies', Meta's and
// the database's records.
func (r *chaosRun) collect(p *messengertest.Platform, g *graphRecorder, bots ...*chaosBot) {
	for _, b := range bots {
		r.dels = append(r.dels, b.deliveries()...)
		b.mu.Lock()
		bad := b.bad
		b.mu.Unlock()
		if bad > 0 {
			r.t.Errorf("%s got %d requests it could not verify or decode", b.app, bad)
		}
	}
	r.calls = g.list()
	sort.SliceStable(r.calls, func(i, j int) bool { return r.calls[i].call.Before(r.calls[j].call) })
	r.hist, r.leases, r.writes, r.threads = r.db.history(r.t), r.db.leases(r.t), r.db.writes(r.t), r.db.threads(r.t)
	r.lb.mu.Lock()
	r.acked, r.first = r.lb.acked, r.lb.first
	r.lb.mu.Unlock()
	r.meta = map[string]string{}
	for psid := range r.threads {
		th, _ := p.Thread(pageID, messenger.ID(psid))
		if th.OwnerAppID != nil {
			r.meta[psid] = string(*th.OwnerAppID)
		} else {
			r.meta[psid] = ""
		}
	}
	r.derive()
}

// derive computes, from what was collected, each shard's lease periods.
func (r *chaosRun) derive() {
	r.periods = map[int][]leasePeriod{}
	for _, l := range r.leases {
		ps := r.periods[l.shard]
		if l.epoch != l.oldEpoch || len(ps) == 0 {
			r.periods[l.shard] = append(ps, leasePeriod{owner: l.owner, epoch: l.epoch, from: l.at, until: l.expires})
			continue
		}
		ps[len(ps)-1].until = l.expires // a renewal moves it on, a release brings it in
	}
	r.matched = map[int64]proxiedCall{}
}

// violations counts a check's failures, reporting the first few.
type violations struct {
	fail func(format string, a ...any)
	what string
	n    int
}

func (r *chaosRun) violations(what string) *violations {
	return &violations{fail: r.fail, what: what}
}

func (v *violations) add(format string, a ...any) {
	v.n++
	if v.n <= 5 {
		v.fail("%s: "+format, append([]any{v.what}, a...)...)
	}
}

// firstDeliveries is each message copy's first delivery, and all its
// deliveries.
func (r *chaosRun) firstDeliveries() (first map[copyKey]chaosDelivery, all map[copyKey][]chaosDelivery) {
	first, all = map[copyKey]chaosDelivery{}, map[copyKey][]chaosDelivery{}
	for _, d := range r.dels {
		if d.kind != "message" || d.mid == "" {
			continue
		}
		k := copyKey{d.mid, d.app}
		all[k] = append(all[k], d)
		if f, ok := first[k]; !ok || d.at.Before(f.at) {
			first[k] = d
		}
	}
	return first, all
}

// logLatencies shows where the messages waited: in Meta's queue (created
// to first posted), in Baton's ingress (first posted to acknowledged) and
// between the acknowledgement and the bot.
func (r *chaosRun) logLatencies() {
	first, _ := r.firstDeliveries()
	var queued, accepted, routed []time.Duration
	for k, ack := range r.acked {
		queued = append(queued, r.first[k.mid].Sub(r.sent[k.mid].at))
		accepted = append(accepted, ack.Sub(r.first[k.mid]))
		if d, ok := first[k]; ok {
			routed = append(routed, d.at.Sub(ack))
		}
	}
	r.t.Logf("latencies: in Meta's queue %s; webhook to acknowledgement %s; acknowledgement to the bot %s",
		bench.Summarise(queued), bench.Summarise(accepted), bench.Summarise(routed))
}

// 1. Every copy of a message that Baton acknowledged reached its bot.
func (r *chaosRun) checkLost() {
	v := r.violations("lost")
	first, _ := r.firstDeliveries()
	inbox := 0
	for k := range r.acked {
		if k.app == "inbox-bot" {
			inbox++
		}
		if _, ok := first[k]; !ok {
			v.add("%s's copy of %s (thread %s) acknowledged at %s, never delivered", k.app, k.mid, r.sent[k.mid].psid, r.acked[k].Format(time.StampMilli))
		}
	}
	r.t.Logf("1. lost: %d copies acknowledged (%d to the inbox), %d delivered, %d lost", len(r.acked), inbox, len(r.acked)-v.n, v.n)
}

// 2. Per thread and bot, what was acknowledged first was delivered first:
// message a precedes b when a's webhook was acknowledged before b's was
// first posted (copies in one POST, or whose POSTs overlapped, have no
// order); a precedes b must not be delivered b first.
func (r *chaosRun) checkOrder() {
	v := r.violations("order")
	first, _ := r.firstDeliveries()
	lanes := map[string][]chaosDelivery{}
	for k, d := range first {
		if _, ok := r.acked[k]; ok {
			lanes[d.psid+"/"+d.app] = append(lanes[d.psid+"/"+d.app], d)
		}
	}
	pairs := 0
	for lane, ds := range lanes {
		sort.Slice(ds, func(i, j int) bool { return ds[i].at.Before(ds[j].at) })
		for i := range ds {
			for j := i + 1; j < len(ds); j++ {
				a, b := ds[i], ds[j] // a delivered before b
				pairs++
				if r.acked[copyKey{b.mid, b.app}].Before(r.first[a.mid]) {
					v.add("lane %s: seq %d (acknowledged %s) delivered after seq %d (first posted %s)", lane,
						r.sent[b.mid].seq, r.acked[copyKey{b.mid, b.app}].Format(time.StampMilli), r.sent[a.mid].seq, r.first[a.mid].Format(time.StampMilli))
				}
			}
		}
	}
	r.t.Logf("2. order: %d lanes (thread, bot), %d pairs of acknowledged messages, %d out of order", len(lanes), pairs, v.n)
}

// 3. A message reaches its bot again only under its delivery id, and for
// fewer than 1%% of the deliveries.
func (r *chaosRun) checkRepeats() {
	v := r.violations("repeats")
	_, all := r.firstDeliveries()
	total, repeats, otherID := 0, 0, 0
	for k, ds := range all {
		total += len(ds)
		repeats += len(ds) - 1
		ids := map[string]bool{}
		for _, d := range ds {
			ids[d.id] = true
		}
		if len(ids) > 1 {
			otherID++
			v.add("%s's copy of %s delivered under %d delivery ids", k.app, k.mid, len(ids))
		}
	}
	pct := 100 * float64(repeats) / float64(max(total, 1))
	if pct >= 1 {
		v.add("%d repeats in %d deliveries: %.2f%%, want under 1%%", repeats, total, pct)
	}
	r.t.Logf("3. repeats: %d deliveries of %d copies, %d repeats (%.2f%%), %d copies under more than one delivery id; repeats by the fault they followed: %s",
		total, len(all), repeats, pct, otherID, r.repeatPhases(all))
}

// repeatPhases counts the repeats by the fault they followed (within 6 s).
func (r *chaosRun) repeatPhases(all map[copyKey][]chaosDelivery) string {
	phases := map[string]int{}
	for _, ds := range all {
		if len(ds) < 2 {
			continue
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].at.Before(ds[j].at) })
		for _, d := range ds[1:] {
			phase := "calm"
			for _, e := range r.events {
				if !d.at.Before(e.at) && d.at.Before(e.at.Add(6*time.Second)) {
					phase = e.name
				}
			}
			phases[phase+" via "+d.via]++
		}
	}
	if r.dir != "" && os.Getenv("BATON_CHAOS_DIR") != "" { // kept for a look
		var b strings.Builder
		for k, ds := range all {
			if len(ds) < 2 {
				continue
			}
			fmt.Fprintf(&b, "%s %s shard %d:", k.app, k.mid, r.threads[ds[0].psid].shard)
			for _, d := range ds {
				fmt.Fprintf(&b, " %s via %s id %s;", d.at.Format("15:04:05.000000"), d.via, d.id)
			}
			b.WriteString("\n")
		}
		_ = os.WriteFile(filepath.Join(r.dir, "repeats.txt"), []byte(b.String()), 0o644)
	}
	return causeList(phases)
}

// 4a. Never two owners of a shard at once: in each shard's log of lease
// changes, an acquire bumps the epoch by one and comes only once the last
// lease ran out or was released, a renewal or release only while it held.
func (r *chaosRun) checkLeases() {
	v := r.violations("leases")
	byShard := map[int][]leaseRow{}
	for _, l := range r.leases {
		byShard[l.shard] = append(byShard[l.shard], l)
	}
	acquires, renewals, releases := 0, 0, 0
	for s, rows := range byShard {
		owner, epoch := "", int64(0)
		for _, l := range rows {
			if l.oldOwner != owner || l.oldEpoch != epoch {
				v.add("shard %d: change %d found %s@%d, the log had %s@%d", s, l.id, l.oldOwner, l.oldEpoch, owner, epoch)
			}
			switch {
			case l.epoch == l.oldEpoch+1:
				acquires++
				if l.oldExpires.After(l.at) {
					v.add("shard %d: %s acquired epoch %d at %s while %s's epoch %d held until %s", s, l.owner, l.epoch,
						l.at.Format(time.StampMicro), l.oldOwner, l.oldEpoch, l.oldExpires.Format(time.StampMicro))
				}
			case l.epoch == l.oldEpoch && l.owner == l.oldOwner:
				if !l.oldExpires.After(l.at) {
					v.add("shard %d: %s's lease at epoch %d changed at %s after it ran out at %s", s, l.owner, l.epoch, l.at.Format(time.StampMicro), l.oldExpires.Format(time.StampMicro))
				}
				if l.expires.After(l.at) {
					renewals++
				} else {
					releases++
				}
			default:
				v.add("shard %d: %s@%d became %s@%d", s, l.oldOwner, l.oldEpoch, l.owner, l.epoch)
			}
			owner, epoch = l.owner, l.epoch
		}
	}
	r.t.Logf("4a. one owner per shard: %d shards, %d acquires (each at epoch+1, after the last lease ran out or was released), %d renewals, %d releases; %d violations",
		len(byShard), acquires, renewals, releases, v.n)
}

// 4b. Every committed write of a thread's rows (its record, history,
// intents and rule jobs) was made by the boot that held its shard's lease,
// at that lease's epoch, and per shard the epochs of the writes only grow.
func (r *chaosRun) checkWrites() {
	v := r.violations("writes")
	boots := map[string]*chaosBoot{}
	for _, b := range r.allBoots() {
		boots[b.app] = b
	}
	perTable := map[string]int{}
	last := map[int]int64{}
	for _, w := range r.writes {
		perTable[w.tbl]++
		b := boots[w.writer]
		switch {
		case b == nil:
			v.add("%s of thread %s written by session %q, no replica's", w.tbl, w.psid, w.writer)
		case w.owner != b.id || !w.expires.After(w.at):
			v.add("%s of thread %s (shard %d) written at %s by %s, while the lease was %s@%d until %s", w.tbl, w.psid, w.shard,
				w.at.Format(time.StampMicro), b.id, w.owner, w.epoch, w.expires.Format(time.StampMicro))
		}
		if w.epoch < last[w.shard] {
			v.add("shard %d: a write at epoch %d after one at epoch %d", w.shard, w.epoch, last[w.shard])
		}
		last[w.shard] = max(last[w.shard], w.epoch)
	}
	r.t.Logf("4b. writes under the lease: %d committed rows (threads %d, history %d, intents %d, jobs %d), each by its shard's holder at its epoch; %d violations",
		len(r.writes), perTable["baton_threads"], perTable["baton_history"], perTable["baton_intents"], perTable["baton_jobs"], v.n)
}

// bootAt is the boot of replica whose act reached a receiver at t: one
// that ran then, or had died less than inFlight before (what it sent just
// before it died arrives after).
func (r *chaosRun) bootAt(replica string, t time.Time) *chaosBoot {
	for _, b := range r.allBoots() {
		if b.replica == replica && !t.Before(b.start) && (b.end.IsZero() || t.Before(b.end.Add(inFlight))) {
			return b
		}
	}
	return nil
}

// holderAt is the lease period of shard that owner held at t, if any.
func (r *chaosRun) holderAt(shard int, owner string, t time.Time) (leasePeriod, bool) {
	for _, p := range r.periods[shard] {
		if p.owner == owner && !t.Before(p.from) && t.Before(p.until) {
			return p, true
		}
	}
	return leasePeriod{}, false
}

// 7. The killed replica's shards were taken, and their work resumed (the
// first write under the new lease, for the shards that had a message
// waiting), within TTL + 2 s of the kill; the paused one's are reported.
func (r *chaosRun) checkTakeover() {
	v := r.violations("takeover")
	limit := r.ttl + 2*time.Second
	kTaken, kResumed, kShards := r.takeover(r.killed, r.killedAt)
	if len(kShards) == 0 {
		v.add("the killed replica held no shard at the kill")
	}
	for s, d := range kTaken {
		if d > limit {
			v.add("shard %d of the killed replica taken %s after the kill, want at most %s", s, d, limit)
		}
	}
	for s, d := range kResumed {
		if d > limit {
			v.add("shard %d of the killed replica resumed %s after the kill, want at most %s", s, d, limit)
		}
	}
	pTaken, pResumed, pShards := r.takeover(r.paused, r.pausedAt)
	r.t.Logf("7. takeover: the killed replica's %d shards taken within %s (max), work resumed within %s (max, %d shards with work waiting); the paused one's %d taken within %s, resumed within %s; %d violations",
		len(kShards), maxDur(kTaken), maxDur(kResumed), len(kResumed), len(pShards), maxDur(pTaken), maxDur(pResumed), v.n)
}

// takeover is, per shard b held at at, how long after at another boot
// acquired it and first wrote under it (shards with a message
// acknowledged from at to at+TTL, work that waited).
func (r *chaosRun) takeover(b *chaosBoot, at time.Time) (taken, resumed map[int]time.Duration, shards []int) {
	taken, resumed = map[int]time.Duration{}, map[int]time.Duration{}
	waiting := map[int]bool{}
	for k, t := range r.acked {
		if !t.Before(at) && t.Before(at.Add(r.ttl)) {
			waiting[r.threads[r.sent[k.mid].psid].shard] = true
		}
	}
	for s, ps := range r.periods {
		if _, ok := r.holderAt(s, b.id, at); !ok {
			continue
		}
		shards = append(shards, s)
		for _, p := range ps {
			if p.from.After(at) && p.owner != b.id {
				taken[s] = p.from.Sub(at)
				break
			}
		}
	}
	for _, w := range r.writes {
		if _, ok := taken[w.shard]; ok && waiting[w.shard] && w.at.After(at) && w.owner != b.id {
			if _, seen := resumed[w.shard]; !seen {
				resumed[w.shard] = w.at.Sub(at)
			}
		}
	}
	slices.Sort(shards)
	return taken, resumed, shards
}

func maxDur(m map[int]time.Duration) time.Duration {
	var out time.Duration
	for _, d := range m {
		out = max(out, d)
	}
	return out.Round(time.Millisecond)
}

// checkAgreement: at the end, Baton's record of every thread's owner is
// Meta's.
func (r *chaosRun) checkAgreement() {
	v := r.violations("agreement")
	for psid, th := range r.threads {
		if th.owner != r.meta[psid] {
			v.add("thread %s: Baton's owner %q, Meta's %q", psid, r.appName[th.owner], r.appName[r.meta[psid]])
		}
	}
	r.t.Logf("end: %d threads, Baton's owner is Meta's on all but %d", len(r.threads), v.n)
}

// describe is a short line for a call, for failures.
func (c proxiedCall) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s by %s via %s at %s", c.op, c.psid, c.app, c.replica, c.call.Format(time.StampMicro))
	if c.target != "" {
		fmt.Fprintf(&b, " to %s", c.target)
	}
	fmt.Fprintf(&b, ": %d", c.status)
	return b.String()
}
