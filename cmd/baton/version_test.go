package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildInfoFrom(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/batonhq/baton", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "77fb2c0abc"}, {Key: "vcs.time", Value: "2026-12-01T11:00:00Z"},
			{Key: "vcs.modified", Value: "true"}, {Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"}}}
	for _, tc := range []struct {
		name   string
		bi     *debug.BuildInfo
		linked string
		rev    string
		want   buildInfo
		line   string
	}{
		{"go install @version", stamped, "", "",
			buildInfo{Version: "v1.4.0", Module: "github.com/batonhq/baton", Revision: "77fb2c0abc", Time: "2026-12-01T11:00:00Z", Modified: true, GoVersion: "go1.26.8", OS: "linux", Arch: "arm64"},
			"baton v1.4.0 (77fb2c0abc, modified, 2026-12-01T11:00:00Z) go1.26.8 linux/arm64"},
		{"make release wins", stamped, "v1.4.1-rc1", "0000000",
			buildInfo{Version: "v1.4.1-rc1", Module: "github.com/batonhq/baton", Revision: "77fb2c0abc", Time: "2026-12-01T11:00:00Z", Modified: true, GoVersion: "go1.26.8", OS: "linux", Arch: "arm64"},
			"baton v1.4.1-rc1 (77fb2c0abc, modified, 2026-12-01T11:00:00Z) go1.26.8 linux/arm64"},
		{"docker build: no .git", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/batonhq/baton", Version: "(devel)"}}, "v1.4.0", "77fb2c0abc",
			buildInfo{Version: "v1.4.0", Module: "github.com/batonhq/baton", Revision: "77fb2c0abc", GoVersion: "go1.26.8", OS: runtime.GOOS, Arch: runtime.GOARCH},
			"baton v1.4.0 (77fb2c0abc) go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH},
		{"no build info", nil, "", "",
			buildInfo{Version: "unknown", GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH},
			"baton unknown " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := buildInfoFrom(tc.bi, tc.linked, tc.rev)
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			if got.String() != tc.line {
				t.Fatalf("line %q, want %q", got.String(), tc.line)
			}
		})
	}
}

// baton version, -version and --version print the same line; -json the
// fields by name.
func TestVersionCommand(t *testing.T) {
	var lines []string
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		var stdout, stderr strings.Builder
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
		lines = append(lines, stdout.String())
	}
	if lines[0] != lines[1] || lines[0] != lines[2] || !strings.HasPrefix(lines[0], "baton ") || !strings.Contains(lines[0], runtime.Version()) {
		t.Fatalf("version lines %q", lines)
	}
	var stdout, stderr strings.Builder
	if code := run(context.Background(), []string{"version", "-json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-json: exit %d, stderr %q", code, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatalf("-json: %v in %q", err, stdout.String())
	}
	for _, k := range []string{"version", "vcs_modified", "go_version", "os", "arch"} {
		if _, ok := got[k]; !ok {
			t.Errorf("-json has no %q: %s", k, stdout.String())
		}
	}
	if code := run(context.Background(), []string{"version", "extra"}, &stdout, &stderr); code != 2 {
		t.Fatalf("version extra: exit %d, want 2", code)
	}
}

// `go install github.com/batonhq/baton/cmd/baton@v1.2.3` refuses a module
// whose go.mod has replace or exclude directives, and one whose module
// path is not where it is fetched from. This test fails the day one
// appears, before a release does.
func TestGoModInstallable(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	module := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "module":
			module = strings.Trim(strings.TrimSpace(rest), `"`)
		case "replace", "exclude":
			t.Errorf("go.mod:%d: %q breaks `go install github.com/batonhq/baton/cmd/baton@version`", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if module != "github.com/batonhq/baton" {
		t.Errorf("go.mod: module %q, want github.com/batonhq/baton (the path go install fetches)", module)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "cmd", "baton", "main.go")); err != nil {
		t.Errorf("cmd/baton is where the README's go install points: %v", err)
	}
}
