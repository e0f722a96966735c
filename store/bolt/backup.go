package bolt

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// snapshot is a consistent copy of the data file, finished: reading it
// holds no transaction. Close removes it.
type snapshot struct{ f *os.File }

func (s snapshot) Read(p []byte) (int, error) { return s.f.Read(p) }

// Close closes the copy and removes its file (where the file system let
// Snapshot remove it while open, it is gone already).
func (s snapshot) Close() error {
	err := s.f.Close()
	if rerr := os.Remove(s.f.Name()); rerr != nil && !os.IsNotExist(rerr) && err == nil {
		err = rerr
	}
	return err
}

// Snapshot writes a consistent copy of the database to a temporary file
// inside one read transaction, ends the transaction, and returns the copy
// to read, with its size; closing it removes it. A backup streamed from inside the transaction would keep it
// open for as long as its client reads, however slowly: bbolt reuses no
// page freed after a reader began, so under writes the file would grow
// for as long as the slowest backup client takes. Copying to a local file
// takes as long as the disk does, whoever reads.
//
// The copy goes beside the data file, not in os.TempDir: it is as large
// as the data file (gigabytes), and the data file's directory is the disk
// sized and mounted writable for it, where os.TempDir is often a tmpfs
// (memory) or a small or read-only root file system in a container. On
// Unix the file is unlinked at once, so a crash mid-backup leaves no
// stray copy; its space is freed when the copy is closed.
//
// ctx ending (the client went away) stops the copy.
func (d *DB) Snapshot(ctx context.Context) (io.ReadCloser, int64, error) {
	f, err := os.CreateTemp(filepath.Dir(d.path), "."+filepath.Base(d.path)+".backup-*")
	if err != nil {
		return nil, 0, fmt.Errorf("backup: a temporary copy beside the data file: %w", err)
	}
	_ = os.Remove(f.Name()) // Unix: gone at once, kept while open; else Close removes it
	s := snapshot{f: f}
	var size int64
	err = d.guard(func() error {
		return d.db.View(func(btx *bolt.Tx) error {
			var err error
			size, err = btx.WriteTo(ctxWriter{ctx, f})
			return err
		})
	})
	if err != nil && ctx.Err() != nil {
		err = ctx.Err() // bbolt's WriteTo keeps only the text of a writer's error
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		_ = s.Close()
		return nil, 0, fmt.Errorf("backup: copy to %s: %w", f.Name(), err)
	}
	return s, size, nil
}

// Backup writes a consistent copy of the database to w while it serves,
// through a Snapshot: however slowly w takes it, no transaction stays
// open meanwhile.
func (d *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	s, _, err := d.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return io.Copy(w, s)
}

// ctxWriter stops a copy once ctx is done: bbolt's WriteTo writes a page
// or a 32 KB buffer at a time, so it stops within a write.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// OpenReadTxs is the number of read transactions open now: what holds
// bbolt's freed pages from reuse.
func (d *DB) OpenReadTxs() int { return d.db.Stats().OpenTxN }
