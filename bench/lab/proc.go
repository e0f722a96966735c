package lab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcStats are a process's CPU time and resident memory, from /proc.
type ProcStats struct {
	CPU   time.Duration // user + system
	RSS   int64         // bytes, now
	MaxRS int64         // bytes, peak (VmHWM)
	// Of RSS: anonymous memory (the heap) and file-backed pages (bbolt's
	// mmap of the data file, which the kernel can drop at will).
	Anon, File int64
}

// ReadProc reads /proc/<pid>/stat and status (Linux only).
func ReadProc(pid int) (ProcStats, error) {
	var s ProcStats
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which may contain spaces.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(f) < 13 {
		return s, fmt.Errorf("short /proc stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	s.CPU = time.Duration(utime+stime) * time.Second / hz
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.RSS = kb << 10
		case "VmHWM":
			s.MaxRS = kb << 10
		case "RssAnon":
			s.Anon = kb << 10
		case "RssFile":
			s.File = kb << 10
		}
	}
	return s, nil
}
