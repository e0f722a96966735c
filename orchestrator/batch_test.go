package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// TestBatchedDeliveriesAcrossACrash runs Baton as its own process with
// adapter.batch on, over real sockets, kills it with SIGKILL while seven
// people write, restarts it on the same file, and checks what the bot got
// in its batches: every acknowledged message, each under one delivery id,
// each thread's first arrivals in Baton's order, a thread never twice in
// one batch.
func TestBatchedDeliveriesAcrossACrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the baton binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "baton")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/batonhq/baton/cmd/baton").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pub, adm := freePort(t), freePort(t)

	key, _ := webhook.Key(env["SUPPORT_HOOK"])
	var mu sync.Mutex
	ids := map[string]map[string]bool{} // mid -> delivery ids
	last := map[string]uint64{}         // psid -> the last first-arrival's delivery number
	var problems []string
	batches, envelopes := 0, 0
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(key, r.Header, body, time.Now(), time.Hour); err != nil {
			t.Errorf("bot: %v", err)
		}
		var b struct {
			Batch []adapters.Delivery `json:"batch"`
		}
		if err := json.Unmarshal(body, &b); err != nil || len(b.Batch) == 0 {
			t.Errorf("bot: not a batch (%v): %.200s", err, body)
		}
		mu.Lock()
		batches++
		inBatch := map[string]bool{}
		for _, d := range b.Batch {
			envelopes++
			if inBatch[d.PSID] {
				problems = append(problems, "thread "+d.PSID+" twice in one batch")
			}
			inBatch[d.PSID] = true
			var ev messenger.Event
			_ = json.Unmarshal(d.Event, &ev)
			if ev.Message == nil || ev.Message.IsEcho {
				continue
			}
			n, _ := strconv.ParseUint(strings.TrimPrefix(d.ID, "dlv_"), 10, 64)
			if ids[ev.Message.Mid] == nil {
				ids[ev.Message.Mid] = map[string]bool{}
				if n <= last[d.PSID] {
					problems = append(problems, fmt.Sprintf("thread %s: %s first arrived after dlv_%d", d.PSID, d.ID, last[d.PSID]))
				}
				last[d.PSID] = n
			}
			ids[ev.Message.Mid][d.ID] = true
		}
		mu.Unlock()
		time.Sleep(3 * time.Millisecond) // the bot's own work: batches form meanwhile
	}))
	defer bot.Close()

	plat := httpServe(t, nil)
	yaml := fmt.Sprintf(`
listen: %q
admin: {listen: %q, token_env: BATON_ADMIN_TOKEN}
data: %q
graph: {url: %q}
delivery: {backoff: 20ms, max_backoff: 100ms, max_attempts: 1000, concurrency: 2}
log: {level: error}
apps:
  - name: support-bot
    app_id: "%s"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    adapter: {type: http, url: %q, secret_env: SUPPORT_HOOK, batch: {max: 5}}
pages:
  - id: "%s"
    primary: support-bot
    tokens: {support-bot: {token_env: PAGE_TOKEN_SUPPORT}}
`, pub, adm, filepath.Join(dir, "baton.db"), plat.url, supportID, bot.URL, pageID)
	start := serveProcess(t, bin, dir, adm, yaml)
	p := restartPlatform(t, plat, pub)

	cmd := start()
	const n = 210
	sent := make(chan struct{})
	var wg sync.WaitGroup
	for th := range 7 { // seven people write at once, each in order
		wg.Add(1)
		go func() {
			defer wg.Done()
			psid := messenger.ID(fmt.Sprintf("70000000000%04d", th))
			for i := range n / 7 {
				if _, err := p.UserSends(pageID, psid, messengertest.UserMessage{Text: fmt.Sprint("m", th, "-", i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(sent) }()
	deadline := time.Now().Add(20 * time.Second)
	for delivered(p) < n/3 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
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
			if ids[mid] == nil {
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
	for mid, s := range ids {
		if len(s) != 1 {
			t.Errorf("message %s delivered under several delivery ids %v", mid, s)
		}
	}
	for _, pr := range problems {
		t.Error(pr)
	}
	if envelopes <= batches {
		t.Errorf("%d envelopes in %d batches: nothing was batched", envelopes, batches)
	}
	t.Logf("%d acknowledged (%d before the kill), all delivered, %d envelopes in %d batches", len(acked), killedAt, envelopes, batches)
}
