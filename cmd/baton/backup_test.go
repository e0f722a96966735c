package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

func TestBackupCommand(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "live.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutThread(store.Thread{ThreadKey: store.ThreadKey{Page: "1", PSID: "7"}})
	}); err != nil {
		t.Fatal(err)
	}
	cut := false
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/backup" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		if cut { // a stream cut short: not a store
			fmt.Fprint(w, "not a whole bbolt file")
			return
		}
		_, _ = db.Backup(r.Context(), w)
	}))
	defer admin.Close()
	t.Setenv("BATON_ADMIN_TOKEN", "tok")
	out := filepath.Join(dir, "copy.db")
	var stdout, stderr strings.Builder
	if code := run(context.Background(), []string{"backup", "-admin", admin.URL, "-o", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	cp, err := bolt.Open(out, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.View(func(tx store.ReadTx) error { _, err := tx.Thread(store.ThreadKey{Page: "1", PSID: "7"}); return err }); err != nil {
		t.Fatalf("the copy lacks the thread: %v", err)
	}
	cp.Close()

	cut = true
	bad := filepath.Join(dir, "bad.db")
	stderr.Reset()
	if code := run(context.Background(), []string{"backup", "-admin", admin.URL, "-o", bad}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "does not open") {
		t.Fatalf("a cut copy: exit %d, %s", code, stderr.String())
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("a cut copy was left at %s", bad)
	}
	if code := run(context.Background(), []string{"backup", "-admin", admin.URL}, &stdout, &stderr); code != 2 {
		t.Fatalf("without -o: exit %d", code)
	}
}
