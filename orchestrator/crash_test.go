package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCrashLosesNothingAcknowledged kills Baton with SIGKILL while a person
// writes and its bot is busy, restarts it on the same bbolt file, and
// checks that every event Baton acknowledged to the platform reaches the
// bot, and that a repeat carries the same delivery id.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the baton binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "baton")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/batonhq/baton/cmd/baton").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pub, adm := freePort(t), freePort(t)

	// The bot is slow, so that deliveries are in flight when Baton dies.
	type seen struct{ ids map[string]bool }
	var mu sync.Mutex
	got := map[string]*seen{} // mid -> delivery ids
	b := newBot(t, env["SUPPORT_HOOK"])
	b.setRespond(func(d adapters.Delivery) (int, string) {
		var ev messenger.Event
		_ = json.Unmarshal(d.Event, &ev)
		if ev.Message != nil && !ev.Message.IsEcho {
			mu.Lock()
			if got[ev.Message.Mid] == nil {
				got[ev.Message.Mid] = &seen{ids: map[string]bool{}}
			}
			got[ev.Message.Mid].ids[d.ID] = true
			mu.Unlock()
		}
		time.Sleep(3 * time.Millisecond) // the bot's own work
		return 200, ""
	})
	go func() { // drain the bot's signal channel: this test reads got
		for range b.got {
		}
	}()

	plat := httpServe(t, nil)
	yaml := fmt.Sprintf(`
listen: %q
admin: {listen: %q, token_env: BATON_ADMIN_TOKEN}
data: %q
graph: {url: %q}
delivery: {backoff: 20ms, max_backoff: 100ms, max_attempts: 1000, concurrency: 4}
log: {level: error}
apps:
  - name: support-bot
    app_id: "%s"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    adapter: {type: http, url: %q, secret_env: SUPPORT_HOOK}
pages:
  - id: "%s"
    primary: support-bot
    tokens: {support-bot: {token_env: PAGE_TOKEN_SUPPORT}}
`, pub, adm, filepath.Join(dir, "baton.db"), plat.url, supportID, b.srv.URL, pageID)
	start := serveProcess(t, bin, dir, adm, yaml)

	p := restartPlatform(t, plat, pub)

	cmd := start()
	const n = 120
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range n {
			psid := messenger.ID(fmt.Sprintf("70000000000%04d", i%7))
			if _, err := p.UserSends(pageID, psid, messengertest.UserMessage{Text: fmt.Sprint("m", i)}); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// Kill once about a third is acknowledged.
	deadline := time.Now().Add(20 * time.Second)
	for delivered(p) < n/3 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown code runs
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killedAt := delivered(p)
	cmd = start()
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	<-sent
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Settle(ctx); err != nil {
		t.Fatal(err)
	}

	acked := ackedMids(t, p)
	if len(acked) < n*9/10 {
		t.Fatalf("only %d of %d messages acknowledged (killed at %d)", len(acked), n, killedAt)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for mid := range acked {
			if got[mid] == nil {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged messages never reached the bot", missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for mid, s := range got {
		if len(s.ids) != 1 {
			t.Errorf("message %s delivered under several delivery ids %v", mid, s.ids)
		}
	}
	t.Logf("%d sent, %d acknowledged (%d before the kill), all delivered", n, len(acked), killedAt)
}

// TestChaosShort is the CI-sized chaos run of `baton bench -chaos`: three
// SIGKILLs under a steady load, resending what got no 200 as Meta does.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the baton binary")
	}
	bin := filepath.Join(t.TempDir(), "baton")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/batonhq/baton/cmd/baton").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "bench", "-chaos", "3", "-rate", "300", "-connections", "16", "-threads", "200").CombinedOutput()
	if err != nil {
		t.Fatalf("chaos: %v\n%s", err, out)
	}
	var acked, delivered, lost, repeats, otherID int
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		fmt.Sscanf(line, "acknowledged messages %d, delivered %d, lost %d", &acked, &delivered, &lost)
		if strings.HasPrefix(line, "repeats to the bot") {
			var pct float64
			fmt.Sscanf(line, "repeats to the bot %d (%f%%), of which under another delivery id %d", &repeats, &pct, &otherID)
		}
	}
	if acked == 0 || lost != 0 || delivered != acked || otherID != 0 {
		t.Fatalf("acked %d delivered %d lost %d repeats %d (other id %d)\n%s", acked, delivered, lost, repeats, otherID, out)
	}
	t.Logf("3 kills: %d acknowledged, all delivered, %d repeats under the same id", acked, repeats)
}

func delivered(p *messengertest.Platform) int {
	n := 0
	for _, h := range p.Webhooks() {
		if h.Status == "delivered" {
			n++
		}
	}
	return n
}

// ackedMids are the messages whose webhook Baton answered with 200.
func ackedMids(t *testing.T, p *messengertest.Platform) map[string]bool {
	out := map[string]bool{}
	for _, h := range p.Webhooks() {
		if h.Status != "delivered" {
			continue
		}
		env, err := messenger.ParseEnvelope([]byte(h.Body))
		if err != nil {
			t.Fatal(err)
		}
		env.Each(func(_ *messenger.Entry, _ messenger.Channel, ev *messenger.Event) {
			if ev.Kind() == messenger.KindMessage {
				out[ev.Message.Mid] = true
			}
		})
	}
	return out
}

// swappable is an httptest-like server whose handler is set later, so that
// its URL can go into a config before the handler exists.
type swappable struct {
	url string
	mu  sync.Mutex
	h   http.Handler
}

func httpServe(t *testing.T, h http.Handler) *swappable {
	s := &swappable{h: h}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.h
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	s.url = "http://" + l.Addr().String()
	return s
}

func (s *swappable) set(h http.Handler) {
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

// serveProcess writes cfg to dir/baton.yaml and returns a function that
// starts `baton serve` on it as a process of its own (its log appended to
// dir/baton.log) and waits for the admin listener's /readyz.
func serveProcess(t *testing.T, bin, dir, adm, cfg string) func() *exec.Cmd {
	t.Helper()
	cfgPath := filepath.Join(dir, "baton.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "-config", cfgPath)
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		logf, _ := os.OpenFile(filepath.Join(dir, "baton.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get("http://" + adm + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd
				}
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, "baton.log"))
				t.Fatalf("baton not ready: %v\n%s", err, log)
			}
			time.Sleep(10 * time.Millisecond) // polling a process of its own: no signal to wait on
		}
	}
}

// restartPlatform is the fake Meta of the process tests, serving on plat:
// support-bot on pageID, whose webhooks, like Meta's, are retried while
// Baton restarts. It closes when the test ends.
func restartPlatform(t *testing.T, plat *swappable, pub string) *messengertest.Platform {
	t.Helper()
	p, err := messengertest.New(messengertest.Config{
		Apps: []messengertest.AppConfig{{Name: "support-bot", ID: supportID, Secret: env["SUPPORT_SECRET"], CallbackURL: "http://" + pub + "/webhooks/support-bot"}},
		Pages: []messengertest.PageConfig{{ID: pageID, DefaultApp: "support-bot",
			Apps: map[string]messengertest.PageAppConfig{"support-bot": {Token: "PT_SUPPORT"}}}},
		Settings: messengertest.Settings{WebhookRetries: 60, WebhookRetryDelay: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	plat.set(p.Handler())
	return p
}
