package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// baton erase against a running Baton: the person's records go, counted;
// another person's stay.
func TestEraseCommand(t *testing.T) {
	dir := t.TempDir()
	yaml := fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0", token_env: ADMIN_TOKEN}
data: %q
graph: {url: "http://127.0.0.1:1"}
apps:
  - name: support-bot
    app_id: "512345678901234"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    adapter: {type: http, url: "http://127.0.0.1:1/support", secret_env: SUPPORT_HOOK}
pages:
  - id: "100200300400500"
    primary: support-bot
    tokens: {support-bot: {token_env: PAGE_TOKEN}}
`, filepath.Join(dir, "baton.db"))
	env := map[string]string{"ADMIN_TOKEN": "admin-secret-0123456789", "SUPPORT_SECRET": "s", "SUPPORT_VERIFY": "v", "SUPPORT_HOOK": "h", "PAGE_TOKEN": "PT"}
	cfg, err := config.Parse("baton.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cfg.Data, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gone, kept := store.ThreadKey{Page: "100200300400500", PSID: "7123456789012345"}, store.ThreadKey{Page: "100200300400500", PSID: "7123456789019999"}
	err = db.Update(context.Background(), func(tx store.Tx) error {
		for _, k := range []store.ThreadKey{gone, kept} {
			if err := tx.PutThread(store.Thread{ThreadKey: k}); err != nil {
				return err
			}
			if err := tx.AppendHistory(k, store.HistoryEntry{Event: "pass", Cause: store.CauseWebhook}); err != nil {
				return err
			}
			ev := json.RawMessage(`{"sender":{"id":"` + k.PSID + `"},"recipient":{"id":"` + k.Page + `"},"message":{"text":"hi"}}`)
			if err := tx.AppendJournal(&store.JournalEntry{App: "support-bot", Page: k.Page, Event: ev}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := orchestrator.NewServer(cfg, db, orchestrator.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-srv.Listening()
	_, adm := srv.Addrs()
	admin := "http://" + adm

	t.Setenv("BATON_ADMIN_TOKEN", env["ADMIN_TOKEN"])
	var out, errb strings.Builder
	if code := run(ctx, []string{"erase", "-admin", admin, gone.Page, gone.PSID}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"baton erase: 3 record(s) about " + gone.PSID + " on page " + gone.Page + " removed", "thread records          1", "journal entries         1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	err = db.View(func(tx store.ReadTx) error {
		if _, err := tx.Thread(gone); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("erased thread: %v", err)
		}
		if _, err := tx.Thread(kept); err != nil {
			t.Errorf("the other thread: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(ctx, []string{"erase", "-admin", admin, "-json", gone.Page, gone.PSID}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"threads": 0`) {
		t.Errorf("again: exit %d %s %s", code, out.String(), errb.String())
	}
	for _, tc := range []struct {
		args  []string
		token string
		code  int
		says  string
	}{
		{[]string{"erase", "-admin", admin, gone.Page}, env["ADMIN_TOKEN"], 2, "baton erase [-admin URL] PAGE PSID"},
		{[]string{"erase", "-admin", admin, gone.Page, "x"}, env["ADMIN_TOKEN"], 1, "400"},
		{[]string{"erase", "-admin", admin, gone.Page, gone.PSID}, "wrong", 1, "401"},
		{[]string{"erase", "-admin", admin, gone.Page, gone.PSID}, "", 2, "BATON_ADMIN_TOKEN"},
	} {
		t.Setenv("BATON_ADMIN_TOKEN", tc.token)
		errb.Reset()
		if code := run(ctx, tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.says) {
			t.Errorf("%v: exit %d %q, want %d saying %q", tc.args, code, errb.String(), tc.code, tc.says)
		}
	}
}
