package lab

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DropCache asks the kernel to drop the file's clean pages from the page
// cache, as a reboot or memory pressure would: a Baton started after it
// reads only the pages it touches. The file must be synced.
func DropCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", path, err)
	}
	return nil
}
