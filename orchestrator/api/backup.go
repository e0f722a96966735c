package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/orchestrator/apierr"
)

// Backuper is a store that takes a consistent copy of itself while it
// serves, finished before anyone reads it (store/bolt: bbolt's
// Tx.WriteTo into a temporary file), so that a slow reader holds no
// transaction.
type Backuper interface {
	// Snapshot takes the copy and returns it to read, with its size;
	// closing it removes it. ctx ending stops the copy.
	Snapshot(ctx context.Context) (io.ReadCloser, int64, error)
}

// backup streams a consistent hot copy of the data file: GET
// /admin/backup, what `baton backup -o FILE` saves. The copy is taken
// whole first, then streamed with its Content-Length: a failure to take
// it is an error answer, not a cut stream, and a client that reads
// slowly (or stalls until the write timeout) holds only the copy, never
// the store's read transaction.
func (api *API) backup(w http.ResponseWriter, r *http.Request) error {
	b, ok := api.d.Store.(Backuper)
	if !ok {
		return apierr.Errorf(apierr.Invalid, "this store makes no backups through Baton; use its own tools")
	}
	// The request's context: a client that goes away stops the copy.
	snap, size, err := b.Snapshot(r.Context())
	if err != nil {
		return fmt.Errorf("backup not taken: %w", err)
	}
	defer snap.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="baton-%s.db"`, time.Now().UTC().Format("20060102T150405Z")))
	n, err := io.Copy(w, snap)
	if err != nil {
		// The status is sent: aborting the response cuts the stream short
		// of its Content-Length, so the client sees an error rather than
		// a clean end (and baton backup also checks that the copy opens).
		api.d.Log.Error("backup not sent whole", zap.Int64("bytes", n), zap.Int64("size", size), zap.Error(err))
		panic(http.ErrAbortHandler)
	}
	return nil
}
