//go:build !linux

package lab

import "errors"

// DropCache is Linux only.
func DropCache(string) error {
	return errors.New("dropping a file from the page cache is implemented on Linux only")
}
