package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/batonhq/baton/store/bolt"
)

// runBackup saves a consistent hot copy of a running Baton's data file,
// through the admin API, and checks that the copy opens as a store.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := adminFlag(fs)
	out := fs.String("o", "", "file to write the copy to (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: baton backup -o FILE", errUsage)
	}
	c, err := newAdminClient(*admin)
	if err != nil {
		return err
	}
	resp, err := c.open(ctx, http.MethodGet, "/admin/backup", 0) // a large file takes as long as it takes; ctx ends it
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp := *out + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, resp.Body)
	if cerr := f.Sync(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup cut short after %d bytes: %w", n, err)
	}
	// A copy that does not open is no backup.
	db, err := bolt.Open(tmp, bolt.Options{})
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("the copy does not open: %w", err)
	}
	if err := db.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "baton backup: %d bytes written to %s; to restore, stop Baton, put the file at its data: path, start it\n", n, *out)
	return nil
}
