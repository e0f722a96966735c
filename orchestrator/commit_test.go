package orchestrator_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator"
	"github.com/batonhq/baton/store"
)

// stallingStore holds each write of a request until the request's sender
// gave up, then lets it commit: the sender is gone while its write
// commits. It counts the writes it held.
type stallingStore struct {
	store.Store
	held *atomic.Int64
}

func (s stallingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if ctx.Done() != nil { // a request's context; Baton's own work has none
		s.held.Add(1)
		<-ctx.Done()
	}
	return s.Store.Update(ctx, fn)
}

// Acknowledged or not, a webhook whose write committed is delivered: the
// effects of the commit run whoever still waits for it, and Meta's retry
// of a webhook answered 5xx is then only a duplicate.
func TestSendersThatGiveUpMidCommitAreDelivered(t *testing.T) {
	for _, wait := range []string{"0s", "2ms"} {
		t.Run("commit_wait="+wait, func(t *testing.T) {
			b := newBot(t, env["SUPPORT_HOOK"])
			yaml := fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0", token_env: BATON_ADMIN_TOKEN}
data: %q
graph: {url: "http://127.0.0.1:1"}
webhooks: {commit_wait: %s}
apps:
  - name: support-bot
    app_id: "%s"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    token_env: SUPPORT_API
    adapter: {type: http, url: %q, secret_env: SUPPORT_HOOK}
pages:
  - id: "%s"
    mode: conversation_routing
    primary: support-bot
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT}
`, filepath.Join(t.TempDir(), "baton.db"), wait, supportID, b.srv.URL, pageID)
			cfg, err := config.Parse("test.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			db := mustOpenStore(t, cfg.Data)
			defer db.Close()
			var held atomic.Int64
			srv, err := orchestrator.NewServer(cfg, stallingStore{db, &held}, orchestrator.ServerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Run(ctx) }()
			defer func() { cancel(); <-done }()
			<-srv.Listening()
			<-srv.O.Ready()
			pub, _ := srv.Addrs()

			const n = 60
			// Long enough for every request to reach its write on a loaded
			// machine; the store holds each write until its sender gives up.
			client := &http.Client{Timeout: time.Second}
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ts := time.Now().UnixMilli()
					body := fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":%d,"messaging":[{"sender":{"id":"71234567890%05d"},"recipient":{"id":"%s"},"timestamp":%d,"message":{"mid":"m_%d","text":"hi"}}]}]}`,
						pageID, ts, i, pageID, ts, i)
					req, _ := http.NewRequest("POST", "http://"+pub+"/webhooks/support-bot", bytes.NewReader([]byte(body)))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Hub-Signature-256", messenger.Sign([]byte(env["SUPPORT_SECRET"]), []byte(body)))
					resp, err := client.Do(req)
					if err == nil { // the sender was meant to give up first
						resp.Body.Close()
						t.Errorf("webhook %d answered %d before its sender gave up", i, resp.StatusCode)
					}
				}()
			}
			wg.Wait()
			if got := held.Load(); got != n {
				t.Fatalf("%d of %d writes reached the store before their senders gave up", got, n)
			}
			seen := map[string]bool{}
			for len(seen) < n {
				d := b.next()
				seen[d.PSID] = true
			}
		})
	}
}
