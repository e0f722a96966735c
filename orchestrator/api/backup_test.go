package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A backup client that reads slowly, or not at all, holds no read
// transaction: the copy is taken whole before the first byte goes out,
// so bbolt can reuse the pages that writes free meanwhile. The file is
// larger than loopback's socket buffers, so a handler that streamed from
// inside the transaction would still be in it.
func TestBackupSlowClientHoldsNoTransaction(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "baton.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	event := []byte(`{"text":"` + strings.Repeat("x", 1<<20) + `"}`)
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		for i := range 32 {
			if err := tx.Enqueue(&store.Delivery{App: "a", Page: "1", PSID: strconv.Itoa(i), Event: event}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Deps{Store: db, AdminToken: "tok"}).AdminHandler())
	defer srv.Close()

	// A client that reads the status and headers, then stalls.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /admin/backup HTTP/1.1\r\nHost: baton\r\nAuthorization: Bearer tok\r\n\r\n")
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 32<<20 {
		t.Fatalf("backup: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	if n := db.OpenReadTxs(); n != 0 {
		t.Fatalf("%d read transactions open while the backup client stalls, want 0", n)
	}
	// Writes meanwhile commit, and the client still gets a whole copy.
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutThread(store.Thread{ThreadKey: store.ThreadKey{Page: "1", PSID: "2"}})
	}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "copy.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, resp.Body)
	f.Close()
	if err != nil || n != resp.ContentLength {
		t.Fatalf("read %d of %d bytes: %v", n, resp.ContentLength, err)
	}
	cp, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.View(func(tx store.ReadTx) error {
		ds, err := tx.PendingDeliveries(0, 0)
		if err == nil && len(ds) != 32 {
			err = fmt.Errorf("%d deliveries, want 32", len(ds))
		}
		return err
	}); err != nil {
		t.Fatalf("the copy: %v", err)
	}
	// The temporary copy is gone from beside the data file.
	left, _ := filepath.Glob(filepath.Join(dir, ".baton.db.backup-*"))
	if len(left) != 0 {
		t.Errorf("temporary copies left: %v", left)
	}
}
