package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator"
)

func lookupEnv(k string) (string, bool) { v, ok := env[k]; return v, ok }

// reloader is the harness's Baton started again on a config file that
// the test rewrites, with its logs observed, so that Reload reads it.
type reloader struct {
	*harness
	srv  *orchestrator.Server
	path string
	yaml string // the file as last written
	logs *observer.ObservedLogs
}

func newReloader(t *testing.T, opts ...harnessOpt) *reloader {
	var y string
	h := newHarness(t, append(opts, func(s *string) { y = *s })...)
	h.stop() // Baton again below, on a file, on the same ports and data
	y = strings.Replace(y, `listen: "127.0.0.1:0"`, fmt.Sprintf("listen: %q", h.cfg.Listen), 1)
	y = strings.Replace(y, `listen: "127.0.0.1:0"`, fmt.Sprintf("listen: %q", h.cfg.Admin.Listen), 1)
	r := &reloader{harness: h, path: filepath.Join(t.TempDir(), "baton.yaml")}
	r.write(y)
	cfg, err := config.Load(r.path, lookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	r.logs = logs
	db := mustOpenStore(t, cfg.Data)
	srv, err := orchestrator.NewServer(cfg, db, orchestrator.ServerOptions{Clock: h.clock, Log: zap.New(core), Env: lookupEnv})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	r.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("baton stopped with %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	select {
	case <-srv.O.Ready():
	case err := <-done:
		t.Fatalf("baton stopped before it was ready: %v", err)
	}
	return r
}

func (r *reloader) write(y string) {
	r.t.Helper()
	r.yaml = y
	if err := os.WriteFile(r.path, []byte(y), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// edit rewrites the file with old replaced by new, once.
func (r *reloader) edit(old, new string) {
	r.t.Helper()
	if !strings.Contains(r.yaml, old) {
		r.t.Fatalf("config has no %q", old)
	}
	r.write(strings.Replace(r.yaml, old, new, 1))
}

// reload asks for a reload that must apply, and returns the pause it
// logged.
func (r *reloader) reload() time.Duration {
	r.t.Helper()
	n := r.logs.FilterMessage("config reloaded").Len()
	if err := r.srv.Reload(); err != nil {
		r.t.Fatalf("reload: %v", err)
	}
	got := r.logs.FilterMessage("config reloaded").All()
	if len(got) != n+1 {
		r.t.Fatalf("%d reloads logged, want %d", len(got), n+1)
	}
	pause, _ := got[n].ContextMap()["pause"].(time.Duration)
	return pause
}

// running counts the goroutines now in function fn (a package-qualified
// name such as "dispatch.(*Dispatcher).runTimers").
func running(fn string) int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "/orchestrator/"+fn+"(") {
			n++
		}
	}
	return n
}

// loops checks that no more than one of each background loop runs (those
// of the old Orchestrator have stopped), and waits for the new one's
// (they start once it has recovered).
func loops(r *reloader) {
	r.t.Helper()
	for _, fn := range []string{"dispatch.(*Dispatcher).runTimers", "handover.(*Engine).Run", "threads.(*Service).RunExpiry", "ingress.(*Ingress).RunSweeper"} {
		if n := running(fn); n > 1 {
			r.t.Errorf("%d goroutines in %s, want 1", n, fn)
		}
		r.eventually(fn+" running", func() bool { return running(fn) == 1 })
	}
}

// Webhooks keep flowing from several senders while the config is
// reloaded again and again: every one is answered 200, each event reaches
// the bot once, in its thread's order, and no loop of an old config
// outlives its reload.
func TestReloadUnderLoad(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { // the last cleanup: after Baton, the bots and the platform stopped
		goleak.VerifyNone(t, leaks, goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
	})
	const (
		senders = 4
		each    = 60
		reloads = 6
	)
	r := newReloader(t)
	var mu sync.Mutex
	got := map[string][]int{} // psid -> the sequence numbers the bot got, in order
	r.support.setRespond(func(d adapters.Delivery) (int, string) {
		var g, i int
		if _, err := fmt.Sscanf(text(d), "%d:%d", &g, &i); err == nil {
			mu.Lock()
			got[d.PSID] = append(got[d.PSID], i)
			mu.Unlock()
		}
		time.Sleep(2 * time.Millisecond) // the bot's own work: deliveries are in flight at each reload
		return 200, ""
	})

	sent := make(chan struct{})
	var wg sync.WaitGroup
	failures := make(chan string, senders*each)
	want := map[string][]int{} // psid -> the sequence numbers sent, in order
	// The senders but the last each write on one thread; the last starts
	// a new thread with every webhook: a delivery that the new dispatcher
	// did not hear of would stay in the outbox.
	psidOf := func(g, i int) string {
		if g == senders-1 {
			return fmt.Sprintf("72234567890%05d", i)
		}
		return fmt.Sprintf("71234567890%05d", g)
	}
	for g := range senders {
		for i := range each {
			want[psidOf(g, i)] = append(want[psidOf(g, i)], i)
		}
	}
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				who := psidOf(g, i)
				ts := 1795557600000 - 60000 + g*1000 + i
				body := fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":%d,"messaging":[{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,"message":{"mid":"m_%d_%d","text":"%d:%d"}}]}]}`,
					pageID, ts, who, pageID, ts, g, i, g, i)
				if st, answer := r.post("support-bot", env["SUPPORT_SECRET"], []byte(body)); st != 200 {
					failures <- fmt.Sprintf("sender %d webhook %d: %d %s", g, i, st, answer)
				}
				if i == each/4 && g == 0 {
					close(sent) // reloads begin with webhooks in flight
				}
			}
		}()
	}
	<-sent
	var pauses []time.Duration
	for k := range reloads {
		r.edit(fmt.Sprintf("backoff: %dms", 20+k), fmt.Sprintf("backoff: %dms", 21+k))
		pauses = append(pauses, r.reload())
		loops(r)
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	r.eventually("every event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range got {
			n += len(s)
		}
		return n >= senders*each
	})
	r.eventually("the outbox empty", func() bool { return r.metric("baton_deliveries_pending") == 0 })
	mu.Lock()
	defer mu.Unlock()
	for who, seq := range want {
		if !slices.Equal(got[who], seq) {
			t.Errorf("thread %s: the bot got %v, want %v", who, got[who], seq)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d threads delivered, want %d", len(got), len(want))
	}
	if n := r.metric(`baton_config_reloads_total{result="applied"}`); n != reloads {
		t.Errorf("applied reloads counted %v, want %d", n, reloads)
	}
	var worst time.Duration
	for _, p := range pauses {
		worst = max(worst, p)
	}
	t.Logf("requests held %v at most over %d reloads (%v)", worst, reloads, pauses)
	if worst > time.Second {
		t.Errorf("a reload held requests %v", worst)
	}
}

// What a reload adds takes effect: a page's webhooks are delivered, and
// a rule escalates.
func TestReloadAddsPageAndRule(t *testing.T) {
	const page2 = "200300400500600"
	r := newReloader(t)
	body := func(page, mid string) []byte {
		return []byte(fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":1795557600000,"messaging":[{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":1795557600000,"message":{"mid":"%s","text":"%s"}}]}]}`,
			page, psid, page, mid, mid))
	}
	// Before: the page is not Baton's; the webhook is acknowledged, shown
	// in the errors and delivered to nobody.
	if st, _ := r.post("support-bot", env["SUPPORT_SECRET"], body(page2, "m_before")); st != 200 {
		t.Fatalf("webhook: %d", st)
	}
	if errs := r.recentErrors(); len(errs) == 0 || !strings.Contains(errs[0].Message, "page not in the config") {
		t.Fatalf("recent errors %+v", errs)
	}
	r.say("human")
	if d := r.support.next(); text(d) != "human" {
		t.Fatalf("support got %q", text(d))
	}

	r.write(r.yaml + `    rules:
      escalate:
        - words: [human]
          to: billing-bot
  - id: "` + page2 + `"
    primary: support-bot
    secondary: [billing-bot, page-inbox]
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT_2}
      billing-bot: {token_env: PAGE_TOKEN_BILLING_2}
`)
	r.reload()
	if st, _ := r.post("support-bot", env["SUPPORT_SECRET"], body(page2, "m_after")); st != 200 {
		t.Fatalf("webhook: %d", st)
	}
	if d := r.support.next(); d.PageID != page2 || text(d) != "m_after" {
		t.Fatalf("support got %s %q, want page %s m_after", d.PageID, text(d), page2)
	}
	r.say("a human please")
	r.support.next()
	r.eventually("the new rule's pass", func() bool { return r.platformOwner() == billingID })
	r.eventually("Baton's record", func() bool { return r.batonThread().Owner == "billing-bot" })
	if e, ok := lastBy(r.batonThread(), "rule:escalate"); !ok || e.To != "billing-bot" {
		t.Fatalf("history %+v", r.batonThread().History)
	}
	// The recent errors of before the reload are still there.
	if errs := r.recentErrors(); len(errs) == 0 || !strings.Contains(errs[len(errs)-1].Message, "page not in the config") {
		t.Fatalf("recent errors after the reload %+v", errs)
	}
}

// A config that does not load, or that changes what needs a restart,
// leaves the running one as it was and says why.
func TestReloadRefused(t *testing.T) {
	r := newReloader(t)
	good := r.yaml
	for _, tc := range []struct {
		name   string
		yaml   string
		result string
		check  func(t *testing.T, err error)
	}{
		{
			name:   "invalid",
			yaml:   strings.Replace(good, "max_attempts: 5", "max_attempts: 5, max_atempts: 3", 1) + "    bogus: 1\n",
			result: "invalid",
			check: func(t *testing.T, err error) {
				var problems config.Errors
				if !errors.As(err, &problems) || len(problems) == 0 {
					t.Fatalf("err %v, want config.Errors", err)
				}
				logged := r.logs.FilterMessage("config problem").All()
				if len(logged) != len(problems) {
					t.Fatalf("%d problems logged, want %d", len(logged), len(problems))
				}
				for i, p := range problems {
					line := logged[i].ContextMap()["problem"]
					if line != p.String() || !strings.HasPrefix(p.String(), r.path+":") {
						t.Errorf("logged %q, want %q, naming %s:line", line, p, r.path)
					}
				}
			},
		},
		{
			name:   "restart needed",
			yaml:   strings.Replace(good, "max_attempts: 5}", "max_attempts: 6}", 1) + "log: {level: debug}\n",
			result: "restart_needed",
			check: func(t *testing.T, err error) {
				var re *orchestrator.RestartError
				if !errors.As(err, &re) || strings.Join(re.Fields, ",") != "log.level" {
					t.Fatalf("err %v, want a RestartError naming log.level", err)
				}
				logged := r.logs.FilterMessage("config not reloaded: fields changed that need a restart; the running config goes on").All()
				if len(logged) != 1 || fmt.Sprint(logged[0].ContextMap()["restart_fields"]) != "[log.level]" {
					t.Fatalf("logged %+v", logged)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.srv.Current()
			r.write(tc.yaml)
			err := r.srv.Reload()
			if err == nil {
				t.Fatal("reload applied")
			}
			tc.check(t, err)
			if r.srv.Current() != before {
				t.Error("the running Orchestrator was replaced")
			}
			if n := r.metric(`baton_config_reloads_total{result="` + tc.result + `"}`); n != 1 {
				t.Errorf("%s reloads counted %v, want 1", tc.result, n)
			}
			loops(r)
			// The old config goes on.
			r.say("still there " + tc.result)
			if d := r.support.next(); text(d) != "still there "+tc.result {
				t.Fatalf("support got %q", text(d))
			}
		})
	}
	// Written right again, the file reloads.
	r.write(strings.Replace(good, "max_attempts: 5}", "max_attempts: 7}", 1))
	r.reload()
}
