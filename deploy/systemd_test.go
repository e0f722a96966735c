package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unit is a systemd unit file: section -> key -> values (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] != nil {
				t.Fatalf("%s:%d: section %s twice", path, n, section)
			}
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is not key=value in a section", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, "baton.service")
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("no [%s] section", s)
		}
	}
	want := map[string]string{
		"ExecStart":       "/usr/local/bin/baton serve -config /etc/baton/baton.yaml",
		"ExecReload":      "/bin/kill -HUP $MAINPID",
		"Restart":         "on-failure",
		"StateDirectory":  "baton",
		"EnvironmentFile": "/etc/baton/baton.env",
		"NoNewPrivileges": "yes",
		"ProtectSystem":   "strict",
		"ProtectHome":     "yes",
		"PrivateTmp":      "yes",
		"ReadWritePaths":  "/var/lib/baton",
	}
	for k, v := range want {
		if got := u.get("Service", k); got != v {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	if u.get("Service", "DynamicUser") != "yes" && u.get("Service", "User") == "" {
		t.Error("[Service] runs as root: set DynamicUser=yes or User=")
	}
	if u.get("Service", "User") == "root" {
		t.Error("[Service] User=root")
	}
	if caps := u.get("Service", "CapabilityBoundingSet"); caps != "" && caps != "CAP_NET_BIND_SERVICE" {
		t.Errorf("CapabilityBoundingSet=%q: Baton needs none, or CAP_NET_BIND_SERVICE alone for :443", caps)
	}
	if _, ok := u["Service"]["CapabilityBoundingSet"]; !ok {
		t.Error("no CapabilityBoundingSet: the service keeps every capability")
	}
	if n := u.get("Service", "LimitNOFILE"); n == "" {
		t.Error("no LimitNOFILE")
	}
	if d, err := time.ParseDuration(u.get("Service", "TimeoutStopSec")); err != nil || d < 15*time.Second {
		t.Errorf("TimeoutStopSec=%q: want at least 15s, the drain's delivery timeout and a margin", u.get("Service", "TimeoutStopSec"))
	}
	if u.get("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("WantedBy=%q", u.get("Install", "WantedBy"))
	}
	// No secret in the unit: they come from the EnvironmentFile.
	if env := u["Service"]["Environment"]; len(env) > 0 {
		for _, e := range env {
			if secretName.MatchString(e) {
				t.Errorf("Environment=%s: secrets go in the EnvironmentFile", e)
			}
		}
	}
}

// systemd-analyze verify, where systemd is installed, checks what the
// parser above cannot: every key's name and value. ExecStart must name an
// existing binary there, so the copy it checks runs the test binary.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	b, err := os.ReadFile("baton.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "baton.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/baton", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "baton.service") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
