// Package lab runs the processes a measurement of bench is made on: the
// baton binary as `baton serve` and bench's peers, each a child process
// with a config, ports and a log of its own in a scratch directory, and
// reads their CPU time and memory from /proc.
package lab

import "os"

// AppSecret signs the load's webhooks; the children get it as SecretEnv.
const (
	AppSecret = "bench-app-secret"
	SecretEnv = "BENCH_SECRET"
)

// BotAppID is the app id of the recording bot Baton hosts.
const BotAppID = "512345678901234"

// Lab is where one measurement runs: the baton binary it starts and a
// scratch directory for configs, data files and logs.
type Lab struct {
	Self string
	Dir  string
}

// New makes a scratch directory named from prefix for the baton binary
// self.
func New(self, prefix string) (*Lab, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	return &Lab{Self: self, Dir: dir}, nil
}

// Close removes the scratch directory.
func (l *Lab) Close() { os.RemoveAll(l.Dir) }
