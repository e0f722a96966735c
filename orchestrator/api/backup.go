package api

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/orchestrator/apierr"
)

// Backuper is a store that writes a consistent copy of itself while it
// serves (store/bolt: bbolt's Tx.WriteTo).
type Backuper interface {
	Backup(w io.Writer) (int64, error)
}

// backup streams a consistent hot copy of the data file: GET
// /admin/backup, what `baton backup -o FILE` saves.
func (api *API) backup(w http.ResponseWriter, r *http.Request) error {
	b, ok := api.d.Store.(Backuper)
	if !ok {
		return apierr.Errorf(apierr.Invalid, "this store makes no backups through Baton; use its own tools")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="baton-%s.db"`, time.Now().UTC().Format("20060102T150405Z")))
	n, err := b.Backup(w)
	if err != nil {
		// The status is sent: aborting the response cuts the stream, so
		// the client sees an error rather than a clean end (and baton
		// backup also checks that the copy opens).
		api.d.Log.Error("backup not written", zap.Int64("bytes", n), zap.Error(err))
		panic(http.ErrAbortHandler)
	}
	return nil
}
