//go:build linux

package main

import (
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// raiseOpenFiles lifts the soft limit on open files to the hard limit:
// every connection is a descriptor, and a soft limit of 1024 is what a
// thousand idle clients take. Go does the same at start since 1.19; the
// log line says what the process has, for an operator who wonders.
func raiseOpenFiles(log *zap.Logger) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("open-files limit not read", zap.Error(err))
		return
	}
	was := lim.Cur
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("open-files limit not raised", zap.Uint64("soft", was), zap.Uint64("hard", lim.Max), zap.Error(err))
			return
		}
	}
	log.Info("open-files limit", zap.Uint64("was", was), zap.Uint64("now", lim.Cur), zap.Uint64("hard", lim.Max))
}
