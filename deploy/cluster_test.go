package deploy_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/batonhq/baton/config"
)

// replicas are the compose file's services of the "cluster" profile that
// run Baton: the ones the load balancer must send to.
func replicas(t *testing.T, c composeFile) []string {
	t.Helper()
	var names []string
	for name, s := range c.Services {
		if contains(s.Profiles, "cluster") && s.Image == c.Services["baton"].Image {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// The "cluster" profile: three replicas on the postgres service, one
// config file, each named by -replica and reachable by its host name,
// their admin APIs on distinct loopback ports, and a load balancer that
// alone publishes the public port.
func TestComposeCluster(t *testing.T) {
	c := readCompose(t)
	names := replicas(t, c)
	if want := []string{"baton-1", "baton-2", "baton-3"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("replicas %v, want %v", names, want)
	}
	if pg := c.Services["postgres"]; !contains(pg.Profiles, "cluster") {
		t.Errorf("postgres: profiles %v lack cluster: the replicas need their database", pg.Profiles)
	}
	for _, name := range []string{"baton", "baton-pg"} {
		if s := c.Services[name]; contains(s.Profiles, "cluster") {
			t.Errorf("%s: in the cluster profile beside the replicas, on their ports", name)
		}
	}
	adminPorts := map[string]string{}
	for _, name := range names {
		s := c.Services[name]
		if s.Hostname != name {
			t.Errorf("%s: hostname %q: cluster.advertise's default (http://<host name>:8090) must be its service name, which the others resolve", name, s.Hostname)
		}
		// The image's ENTRYPOINT is baton: the command is serve's arguments.
		if len(s.Command) == 0 || s.Command[0] != "serve" {
			t.Errorf("%s: command %q, want serve and its flags", name, s.Command)
		}
		flags := map[string]string{}
		for i := 1; i+1 < len(s.Command); i += 2 {
			flags[s.Command[i]] = s.Command[i+1]
		}
		if flags["-config"] != "/etc/baton/baton.yaml" || flags["-replica"] != name {
			t.Errorf("%s: command %q, want -config /etc/baton/baton.yaml -replica %s", name, s.Command, name)
		}
		if !contains(s.Volumes, "./baton-cluster.yaml:/etc/baton/baton.yaml:ro") {
			t.Errorf("%s: volumes %v, want the cluster config mounted", name, s.Volumes)
		}
		if f := envFiles(s.EnvFile); !f["baton.env"] || !f["postgres.env"] || !f["cluster.env"] || len(s.Environment) > 0 {
			t.Errorf("%s: env_file %v, environment %v: secrets from baton.env, postgres.env and cluster.env only", name, f, s.Environment)
		}
		if !dependsOn(t, s.DependsOn)["postgres"] {
			t.Errorf("%s: does not depend on postgres", name)
		}
		if d, err := time.ParseDuration(s.StopGrace); err != nil || d < 15*time.Second {
			t.Errorf("%s: stop_grace_period %q, want at least 15s for the hand-off and the drain", name, s.StopGrace)
		}
		if len(s.Ports) != 1 {
			t.Errorf("%s: ports %v, want the admin API alone (webhooks come through the load balancer)", name, s.Ports)
			continue
		}
		host, rest, _ := strings.Cut(s.Ports[0], ":")
		hostPort, target, _ := strings.Cut(rest, ":")
		if host != "127.0.0.1" || target != "8081" {
			t.Errorf("%s: port %q, want 127.0.0.1:<port>:8081, the admin API on loopback", name, s.Ports[0])
		}
		if other, ok := adminPorts[hostPort]; ok {
			t.Errorf("%s and %s publish the admin API on the same port %s", other, name, hostPort)
		}
		adminPorts[hostPort] = name
	}

	lb, ok := c.Services["lb"]
	if !ok {
		t.Fatal("compose.yaml: no lb service")
	}
	if !contains(lb.Profiles, "cluster") || lb.Image == "" || lb.Image == c.Services["baton"].Image {
		t.Errorf("lb: profiles %v, image %q: want a load balancer's image in the cluster profile", lb.Profiles, lb.Image)
	}
	if !contains(lb.Ports, "8080:8080") {
		t.Errorf("lb: ports %v, want 8080:8080", lb.Ports)
	}
	if !contains(lb.Volumes, "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro") {
		t.Errorf("lb: volumes %v, want deploy/haproxy.cfg mounted where the image reads it", lb.Volumes)
	}
	deps := dependsOn(t, lb.DependsOn)
	for _, name := range names {
		if !deps[name] {
			t.Errorf("lb: does not depend on %s", name)
		}
	}

	// The balancer sends to exactly the replicas, on their public port.
	h := parseHAProxy(t, "haproxy.cfg")
	front := h.section(t, "frontend")
	if !contains(front.lines, "bind :8080") {
		t.Errorf("haproxy.cfg: frontend %v does not bind :8080", front.lines)
	}
	backend := ""
	for _, l := range front.lines {
		if b, ok := strings.CutPrefix(l, "default_backend "); ok {
			backend = b
		}
	}
	be := h.section(t, "backend "+backend)
	for _, want := range []string{"balance roundrobin", "option httpchk", "http-check send meth GET uri /readyz", "http-check expect status 200"} {
		if !contains(be.lines, want) {
			t.Errorf("haproxy.cfg: backend %s lacks %q", backend, want)
		}
	}
	var servers []string
	checked := false
	for _, l := range be.lines {
		f := strings.Fields(l)
		switch {
		case f[0] == "server" && len(f) >= 3:
			host, port, err := net.SplitHostPort(f[2])
			if err != nil || port != "8080" || f[1] != host {
				t.Errorf("haproxy.cfg: %q: want server <replica> <replica>:8080", l)
			}
			servers = append(servers, host)
			checked = checked || contains(f[3:], "check")
		case f[0] == "default-server":
			checked = checked || contains(f[1:], "check")
		}
	}
	sort.Strings(servers)
	if !reflect.DeepEqual(servers, names) {
		t.Errorf("haproxy.cfg: servers %v, the compose file's replicas %v", servers, names)
	}
	if !checked {
		t.Error("haproxy.cfg: the servers are not health-checked")
	}
}

// The replicas' config, with the example env files, is one baton check
// accepts, and one file fits every replica: it names none, so each takes
// its name from -replica and its address from its host name.
func TestClusterConfig(t *testing.T) {
	env := readEnvFile(t, "baton.env.example")
	for _, f := range []string{"postgres.env.example", "cluster.env.example"} {
		for k, v := range readEnvFile(t, f) {
			env[k] = v
		}
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Load("baton-cluster.yaml", lookup)
	if err != nil {
		t.Fatalf("baton-cluster.yaml with the example env files: %v", err)
	}
	cl := cfg.Cluster
	if cl == nil {
		t.Fatal("baton-cluster.yaml: no cluster section")
	}
	if cl.SecretEnv != "BATON_CLUSTER_SECRET" || cl.Secret.Reveal() != env["BATON_CLUSTER_SECRET"] {
		t.Errorf("cluster.secret_env %q: want BATON_CLUSTER_SECRET, from cluster.env", cl.SecretEnv)
	}
	host, _ := os.Hostname()
	if cl.Name != host || cl.Advertise != config.AdvertiseFor(cl.InternalListen) {
		t.Errorf("cluster name %q, advertise %q: set in the file, the same for every replica; leave both to -replica and the host name", cl.Name, cl.Advertise)
	}
	if cl.InternalListen != ":8090" || cfg.Listen != ":8080" || cfg.Admin.Listen != ":8081" {
		t.Errorf("internal %q, listen %q, admin %q: not what the image, compose and haproxy.cfg expect", cl.InternalListen, cfg.Listen, cfg.Admin.Listen)
	}
	// Everything but the cluster section is baton-postgres.yaml's.
	pg, err := config.Load("baton-postgres.yaml", lookup)
	if err != nil {
		t.Fatalf("baton-postgres.yaml: %v", err)
	}
	if !reflect.DeepEqual(cfg.Store, pg.Store) || !reflect.DeepEqual(cfg.Apps, pg.Apps) || !reflect.DeepEqual(cfg.Pages, pg.Pages) {
		t.Error("baton-cluster.yaml's store, apps or pages differ from baton-postgres.yaml's")
	}
	// Without the shared secret a replica does not start.
	delete(env, "BATON_CLUSTER_SECRET")
	if _, err := config.Load("baton-cluster.yaml", lookup); err == nil || !strings.Contains(err.Error(), "cluster.secret_env") {
		t.Errorf("without BATON_CLUSTER_SECRET: %v, want a problem naming cluster.secret_env", err)
	}
}

// haproxy -c, where HAProxy is installed, checks what the parser below
// cannot: every keyword. The replicas' names resolve only on the compose
// network, which init-addr none allows for.
func TestHAProxyCheck(t *testing.T) {
	hp, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed")
	}
	if out, err := exec.Command(hp, "-c", "-f", "haproxy.cfg").CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}

// dependsOn reads depends_on in both of compose's forms.
func dependsOn(t *testing.T, n yaml.Node) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	switch n.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			t.Fatalf("depends_on: %v", err)
		}
		for _, s := range names {
			out[s] = true
		}
	case yaml.MappingNode:
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			t.Fatalf("depends_on: %v", err)
		}
		for s := range m {
			out[s] = true
		}
	default:
		t.Fatalf("depends_on at line %d: neither a list nor a map", n.Line)
	}
	return out
}

// haproxySection is one section of an HAProxy config: its header line
// ("backend batons") and its lines, each trimmed, comments dropped.
type haproxySection struct {
	header string
	lines  []string
}

type haproxyConfig []haproxySection

func parseHAProxy(t *testing.T, path string) haproxyConfig {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var h haproxyConfig
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if raw[0] != ' ' && raw[0] != '\t' {
			h = append(h, haproxySection{header: strings.Join(strings.Fields(line), " ")})
			continue
		}
		if len(h) == 0 {
			t.Fatalf("%s:%d: %q before any section", path, n, line)
		}
		h[len(h)-1].lines = append(h[len(h)-1].lines, strings.Join(strings.Fields(line), " "))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return h
}

// section is the one section whose header is header, or, for a bare
// keyword ("frontend"), the one section of that kind.
func (h haproxyConfig) section(t *testing.T, header string) haproxySection {
	t.Helper()
	var found []haproxySection
	for _, s := range h {
		if s.header == header || (!strings.Contains(header, " ") && strings.HasPrefix(s.header, header+" ")) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("haproxy.cfg: %d sections %q, want one", len(found), header)
	}
	return found[0]
}
