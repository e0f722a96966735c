package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at link time by `make release`
// (-ldflags "-X main.version=v1.2.3"); when empty, the module version Go
// stamped into the binary stands: the tag for `go install ...@v1.2.3`, a
// pseudo-version or "(devel)" for a build in a checkout.
var version string

// revision is the commit, set at link time where Go cannot stamp it (a
// Docker build without .git, a build with -buildvcs=false); Go's own
// vcs.revision wins when present.
var revision string

// buildInfo is what `baton version` prints: enough to tell which commit a
// running Baton was built from, and whether the tree had local changes.
type buildInfo struct {
	Version   string `json:"version"`
	Module    string `json:"module,omitempty"`
	Revision  string `json:"vcs_revision,omitempty"`
	Time      string `json:"vcs_time,omitempty"`
	Modified  bool   `json:"vcs_modified"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

// readBuildInfo reads this binary's build information.
func readBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return buildInfoFrom(bi, version, revision)
}

// buildInfoFrom reads bi (nil when the binary carries none) and the
// link-time version, which wins over the module's when set, and revision,
// which stands in for a missing vcs.revision.
func buildInfoFrom(bi *debug.BuildInfo, linked, linkedRev string) buildInfo {
	info := buildInfo{Version: "unknown", GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi != nil {
		info.Module = bi.Main.Path
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			case "GOOS":
				info.OS = s.Value
			case "GOARCH":
				info.Arch = s.Value
			}
		}
	}
	if linked != "" {
		info.Version = linked
	}
	if info.Revision == "" {
		info.Revision = linkedRev
	}
	return info
}

// String is the one line `baton version` prints.
func (b buildInfo) String() string {
	s := "baton " + b.Version
	if b.Revision != "" {
		s += " (" + b.Revision
		if b.Modified {
			s += ", modified"
		}
		if b.Time != "" {
			s += ", " + b.Time
		}
		s += ")"
	}
	return s + fmt.Sprintf(" %s %s/%s", b.GoVersion, b.OS, b.Arch)
}

// runVersion prints the build information, as a line or as JSON.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: version takes no arguments", errUsage)
	}
	info := readBuildInfo()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	_, err := fmt.Fprintln(stdout, info)
	return err
}
