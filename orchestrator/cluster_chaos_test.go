package orchestrator_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// TestClusterChaos is issue 14's cluster chaos test: PostgreSQL, the fake
// platform, three `baton serve` processes behind a loopback round robin,
// ~500 messages/s over 1,000 threads, a tenth of them handed to a second
// app (the inbox) by the support bot's answer and given back by a return
// rule after 1.5 s of quiet. Under that load the replica holding the most
// shards is killed with SIGKILL and restarted, and another is stopped with
// SIGSTOP past its leases and resumed. Then, from what Meta, the bots, the
// Graph API and the database saw (chaos_checks_test.go): nothing
// acknowledged is lost, nothing is out of order, repeats are rare and keep
// their delivery id, no shard ever had two owners and every write was its
// shard owner's, every Graph thread-control call is one transition and
// none came from a replica without the lease, every return fired once,
// the dead replica's shards came back within TTL + 2 s, and porcupine
// finds each thread's ownership linearizable.
func TestClusterChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("three baton processes on PostgreSQL under load, with a SIGKILL and a SIGSTOP")
	}
	const (
		nThreads = 1000
		rate     = 500 // messages per second
		ttl      = 3 * time.Second
		returnIn = 1500 * time.Millisecond
	)
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { // the last cleanup: after the replicas, the rig and the platform stopped
		goleak.VerifyNone(t, leaks, goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
	})
	dsn := pgDSN(t)
	schema := pgSchema(t, dsn, "chaos")
	run := &chaosRun{t: t, fail: t.Errorf, ttl: ttl, returnAfter: returnIn, handed: map[string]bool{}, sent: map[string]sentMsg{},
		appName: map[string]string{supportID: "support-bot", billingID: "inbox-bot", "": ""}}
	run.db = chaosDB{prepareChaosSchema(t, dsn, schema)}
	// BATON_CHAOS_DIR keeps the replicas' logs (and the test's dumps) there.
	dir := os.Getenv("BATON_CHAOS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	run.dir = dir
	bin := filepath.Join(dir, "baton")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/batonhq/baton/cmd/baton").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	psids := make([]string, nThreads)
	for i := range psids {
		psids[i] = fmt.Sprintf("72%014d", i)
		if i%10 == 0 {
			run.handed[psids[i]] = true
		}
	}
	// The support bot hands its handed threads to the inbox whenever it
	// holds one; the return rule gives them back.
	support := newChaosBot(t, "support-bot", env["SUPPORT_HOOK"], func(d adapters.Delivery) []adapters.Action {
		if run.handed[d.PSID] && d.Kind == "message" && d.Channel == "messaging" && (d.Thread.OwnerAppID == "" || d.Thread.OwnerAppID == supportID) {
			return []adapters.Action{{Type: "pass", To: "inbox-bot"}}
		}
		return nil
	})
	inbox := newChaosBot(t, "inbox-bot", env["BILLING_HOOK"], nil)

	names := []string{"r1", "r2", "r3"}
	procs := make([]*chaosProc, len(names))
	var publics []string
	for i, n := range names {
		procs[i] = &chaosProc{t: t, name: n, bin: bin, dir: dir, dsn: dsn, pub: freePort(t), adm: freePort(t), internal: freePort(t)}
		publics = append(publics, procs[i].pub)
	}
	run.procs = procs
	lb := newChaosLB(t, publics)
	run.lb = lb
	p, err := messengertest.New(messengertest.Config{
		Apps: []messengertest.AppConfig{
			{Name: "support-bot", ID: supportID, Secret: env["SUPPORT_SECRET"], VerifyToken: env["SUPPORT_VERIFY"], CallbackURL: lb.srv.URL + "/webhooks/support-bot"},
			// The inbox hears of its own threads only: no standby copies.
			{Name: "inbox-bot", ID: billingID, Secret: env["BILLING_SECRET"], VerifyToken: env["BILLING_VERIFY"], CallbackURL: lb.srv.URL + "/webhooks/inbox-bot",
				SubscribedFields: []string{"messages", "messaging_handovers"}},
		},
		Pages: []messengertest.PageConfig{{ID: pageID, Mode: messengertest.ModeConversationRouting, DefaultApp: "support-bot", NoPageInbox: true,
			Apps: map[string]messengertest.PageAppConfig{"support-bot": {Token: "PT_SUPPORT", Takeover: true}, "inbox-bot": {Token: "PT_BILLING"}}}},
		// Meta retries a webhook that got no 200, holding back the app's
		// later ones, and batches what queued meanwhile.
		Settings: messengertest.Settings{WebhookRetries: 1000, WebhookRetryDelay: 20 * time.Millisecond, MaxBatch: 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	graph := &graphRecorder{fake: p.Handler(), tokens: map[string]string{"PT_SUPPORT": "support-bot", "PT_BILLING": "inbox-bot"}}
	for _, pr := range procs {
		pr.cfg = filepath.Join(dir, pr.name+".yaml")
		if err := os.WriteFile(pr.cfg, []byte(chaosConfig(schema, graph.serve(t, pr.name), support.url+"/"+pr.name, inbox.url+"/"+pr.name, ttl, returnIn)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, pr := range procs {
			pr.shutdown()
		}
		if t.Failed() {
			for _, b := range run.allBoots() {
				t.Logf("--- %s (%s), the end of its log:\n%s", b.app, b.id, tailLog(b.log, 30))
			}
		}
	})
	began := time.Now()
	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := pr.tryStart(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	run.waitHeld(func(h map[string]int) bool { return len(h) == 3 }, "spread over three replicas")
	t.Logf("three replicas up and holding all 256 shards in %s", time.Since(began).Round(time.Millisecond))

	// The load: one person after another, each message to a thread drawn
	// at random, its text the thread's sequence number; every 10 ms, what
	// the rate asks for since the start (a late tick catches up).
	stopLoad, loadDone := make(chan struct{}), make(chan struct{})
	var stopOnce sync.Once
	endLoad := func() { stopOnce.Do(func() { close(stopLoad) }); <-loadDone }
	t.Cleanup(endLoad) // a failure before the load's end stops it too
	loadStart := time.Now()
	go func() {
		defer close(loadDone)
		rng := rand.New(rand.NewPCG(14, 14))
		seq := make([]int, nThreads)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for sent := 0; ; {
			select {
			case <-stopLoad:
				return
			case <-tick.C:
			}
			due := int(time.Since(loadStart).Seconds() * rate)
			for ; sent < due; sent++ {
				i := rng.IntN(nThreads)
				seq[i]++
				at := time.Now()
				mid, err := p.UserSends(pageID, messenger.ID(psids[i]), messengertest.UserMessage{Text: fmt.Sprintf("seq=%d", seq[i])})
				if err != nil {
					t.Error(err)
					return
				}
				run.noteSent(mid, psids[i], seq[i], at)
			}
		}
	}()
	time.Sleep(5 * time.Second) // warm-up: the schedule of the faults is the test's

	// SIGKILL the replica holding the most shards; its shards must be
	// taken within TTL + 2 s; restart it, and it gets them back.
	victim := run.mostShards(procs)
	held := run.db.holders(t)[victim.current().id]
	run.killed = victim.current()
	run.killedAt = victim.kill()
	run.events = append(run.events, chaosEvent{"kill", run.killedAt})
	run.waitHeld(func(h map[string]int) bool { return h[run.killed.id] == 0 }, "taken from the killed "+victim.name)
	t.Logf("killed %s (%d shards) at +%s; the others hold them all %s later", victim.name, held, run.killedAt.Sub(loadStart).Round(time.Millisecond),
		time.Since(run.killedAt).Round(time.Millisecond))
	time.Sleep(time.Second)
	back := victim.start()
	run.events = append(run.events, chaosEvent{"restart", back.start})
	run.waitHeld(func(h map[string]int) bool { return h[back.id] == held }, victim.name+" given its shards back")
	t.Logf("restarted %s at +%s; it holds its %d shards again", victim.name, back.start.Sub(loadStart).Round(time.Millisecond), held)

	// SIGSTOP the busier of the other two until its leases ran out by the
	// database's clock, and its shards are the others'; then SIGCONT.
	var others []*chaosProc
	for _, pr := range procs {
		if pr != victim {
			others = append(others, pr)
		}
	}
	paused := run.mostShards(others)
	pausedHeld := run.db.holders(t)[paused.current().id]
	run.paused = paused.current()
	run.pausedAt = paused.signal(syscall.SIGSTOP)
	run.events = append(run.events, chaosEvent{"pause", run.pausedAt})
	run.waitHeld(func(h map[string]int) bool { return h[run.paused.id] == 0 }, "taken from the paused "+paused.name)
	expiry := run.db.lastExpiry(t, run.paused.id)
	resumeAt := expiry.Add(time.Second)
	if at := run.pausedAt.Add(ttl + time.Second); at.After(resumeAt) {
		resumeAt = at
	}
	time.Sleep(time.Until(resumeAt)) // past its lease, and past a TTL
	run.resumedAt = paused.signal(syscall.SIGCONT)
	run.events = append(run.events, chaosEvent{"resume", run.resumedAt})
	if d := run.resumedAt.Sub(run.pausedAt); d <= ttl {
		t.Errorf("paused %s only %s: want longer than the lease TTL", paused.name, d)
	}
	t.Logf("stopped %s (%d shards) at +%s for %s, its last lease ran out at +%s", paused.name, pausedHeld, run.pausedAt.Sub(loadStart).Round(time.Millisecond),
		run.resumedAt.Sub(run.pausedAt).Round(time.Millisecond), expiry.Sub(loadStart).Round(time.Millisecond))
	run.waitHeld(func(h map[string]int) bool { return h[run.paused.id] == pausedHeld }, paused.name+" given its shards back")
	time.Sleep(30 * time.Second) // calm load after the faults: repeats are per fault, the bound per delivery
	endLoad()
	loadTime := time.Since(loadStart)

	// The quiet tail: until Meta sent what it queued, every acknowledged
	// copy reached its bot, and every handed thread is back with the
	// support bot, at Meta and in Baton (the return rule fires 1.5 s after
	// the last activity).
	tail := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Settle(ctx); err != nil {
		t.Errorf("30 s after the load stopped, Meta still had webhooks to send: %v", err)
	}
	posted := time.Since(tail)
	deadline := time.Now().Add(30 * time.Second)
	var delivered time.Duration
	for {
		undelivered, out := run.pending(p, support, inbox)
		if undelivered == 0 && delivered == 0 {
			delivered = time.Since(tail)
		}
		if undelivered == 0 && out == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("30 s after Meta's queue emptied, %d acknowledged copies not delivered, %d handed threads not returned", undelivered, out)
			break
		}
		time.Sleep(50 * time.Millisecond) // what settles is in three processes and the database: polled
	}
	lb.mu.Lock()
	posts, failed := lb.posts, lb.failed
	lb.mu.Unlock()
	t.Logf("load: %d messages in %s (%.0f/s), %d webhook POSTs (%d answered non-2xx); after it stopped, Meta's queue empty in %s, all delivered in %s, all returned in %s",
		len(run.sent), loadTime.Round(time.Millisecond), float64(len(run.sent))/loadTime.Seconds(), posts, failed,
		posted.Round(time.Millisecond), delivered.Round(time.Millisecond), time.Since(tail).Round(time.Millisecond))

	run.collect(p, graph, support, inbox)
	run.logLatencies()
	run.checkLost()
	run.checkOrder()
	run.checkRepeats()
	run.checkLeases()
	run.checkWrites()
	run.checkGraph()
	run.checkCallsUnderLease()
	run.checkDeliveriesUnderLease()
	run.checkReturns()
	run.checkTakeover()
	run.checkLinearizable()
	run.checkAgreement()
	t.Logf("the whole run took %s", time.Since(began).Round(time.Millisecond))
}

// chaosConfig is the replicas' config: the same for all but graph.url,
// which is each one's recording proxy, and the bots' URLs, whose path
// names the replica; the flags of serve set the rest.
func chaosConfig(schema, graphURL, supportURL, inboxURL string, ttl, returnAfter time.Duration) string {
	return fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0", token_env: BATON_ADMIN_TOKEN}
store: {postgres: {dsn_env: TEST_PG_DSN, schema: %s}}
cluster: {secret_env: CLUSTER_SECRET, lease_ttl: %s, lease_margin: 1s}
graph: {url: %q, version: "v21.0"}
delivery: {backoff: 20ms, max_backoff: 200ms, max_attempts: 1000}
log: {level: info}
apps:
  - name: support-bot
    app_id: "%s"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    adapter: {type: http, url: %q, secret_env: SUPPORT_HOOK}
  - name: inbox-bot
    app_id: "%s"
    secret_env: BILLING_SECRET
    verify_token_env: BILLING_VERIFY
    adapter: {type: http, url: %q, secret_env: BILLING_HOOK}
pages:
  - id: "%s"
    mode: conversation_routing
    primary: support-bot
    secondary: [inbox-bot]
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT}
      inbox-bot: {token_env: PAGE_TOKEN_BILLING}
    rules:
      return: {after: %s, to: primary}
`, schema, ttl, graphURL, supportID, supportURL, billingID, inboxURL, pageID, returnAfter)
}
