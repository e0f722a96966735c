package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/batonhq/baton/config"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	from, name string
	ins        []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	start := 0
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			st := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s stage) last(cmd string) (instruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instruction{}, false
	}
	return all[len(all)-1], true
}

// secretName is an ENV or ARG that looks like it carries a secret.
var secretName = regexp.MustCompile(`(?i)(secret|token|password|passwd|api_?key|private)`)

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join("..", "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	var built bool
	for _, in := range build.all("RUN") {
		if strings.Contains(in.args, "go build") {
			built = true
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/baton"} {
				if !strings.Contains(in.args, want) {
					t.Errorf("Dockerfile:%d: go build without %s", in.line, want)
				}
			}
		}
	}
	if !built || build.name == "" {
		t.Errorf("the first stage (%q) is not a named stage that runs go build", build.name)
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("final image %s: want distroless/static (CA certificates, time zones) or scratch", final.from)
	}
	var copied bool
	for _, in := range final.all("COPY") {
		if strings.Contains(in.args, "--from="+build.name) && strings.HasSuffix(in.args, "/usr/local/bin/baton") {
			copied = true
		}
	}
	if !copied {
		t.Error("the final stage does not copy the binary from the build stage to /usr/local/bin/baton")
	}
	if u, ok := final.last("USER"); !ok || u.args == "0" || strings.HasPrefix(u.args, "root") || !strings.HasPrefix(u.args, "65532") {
		t.Errorf("final USER %q, want 65532 (non-root)", u.args)
	}
	checks := map[string]string{
		"ENTRYPOINT": `["baton"]`,
		"CMD":        `["serve", "-config", "/etc/baton/baton.yaml"]`,
		"VOLUME":     `["/var/lib/baton"]`,
	}
	for cmd, want := range checks {
		if in, ok := final.last(cmd); !ok || strings.ReplaceAll(in.args, " ", "") != strings.ReplaceAll(want, " ", "") {
			t.Errorf("final %s %q, want %s", cmd, in.args, want)
		}
	}
	expose, _ := final.last("EXPOSE")
	for _, port := range []string{strings.TrimPrefix(config.DefaultListen, ":"), "8081", strings.TrimPrefix(config.DefaultInternalListen, ":")} {
		if !strings.Contains(" "+expose.args+" ", " "+port+" ") {
			t.Errorf("EXPOSE %q lacks %s", expose.args, port)
		}
	}
	for _, st := range stages {
		for _, in := range st.ins {
			if in.cmd != "ENV" && in.cmd != "ARG" {
				if in.cmd == "COPY" && strings.Contains(in.args, ".env") {
					t.Errorf("Dockerfile:%d: copies an env file into the image", in.line)
				}
				continue
			}
			name, value, _ := strings.Cut(in.args, "=")
			if secretName.MatchString(name) && strings.Trim(value, `"'`) != "" {
				t.Errorf("Dockerfile:%d: %s %s has a value: secrets come from the environment at run time", in.line, in.cmd, name)
			}
		}
	}
}

// .dockerignore keeps the git history, data files and secrets out of the
// build context, and nothing the build needs.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(line, "/"), "/"))
		}
	}
	for _, want := range []string{".git", "**/*.db", "*.env", "dist"} {
		if !contains(patterns, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "../cmd/baton").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module from the cache
		}
		for _, p := range patterns {
			if !strings.ContainsAny(p, "*?[") && (rel == p || strings.HasPrefix(rel, p+"/")) {
				t.Errorf(".dockerignore's %s leaves out %s, which cmd/baton needs", p, rel)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type composeFile struct {
	Services map[string]struct {
		Image    string   `yaml:"image"`
		Profiles []string `yaml:"profiles"`
		Build    struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		EnvFile     []yaml.Node       `yaml:"env_file"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		StopGrace   string            `yaml:"stop_grace_period"`
		Hostname    string            `yaml:"hostname"`
		Command     []string          `yaml:"command"`
		DependsOn   yaml.Node         `yaml:"depends_on"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

func TestCompose(t *testing.T) {
	c := readCompose(t)
	baton, ok := c.Services["baton"]
	if !ok {
		t.Fatal("compose.yaml: no baton service")
	}
	if _, err := os.Stat(filepath.Join(baton.Build.Context, baton.Build.Dockerfile)); err != nil || baton.Build.Dockerfile == "" {
		t.Errorf("baton.build: %s/%s: %v", baton.Build.Context, baton.Build.Dockerfile, err)
	}
	if baton.Image == "" {
		t.Error("baton: no image name")
	}
	if !envFiles(baton.EnvFile)["baton.env"] {
		t.Error("baton: secrets not from env_file baton.env")
	}
	if len(baton.Environment) > 0 {
		t.Errorf("baton: environment %v in the compose file; secrets go in the env_file", baton.Environment)
	}
	if !contains(baton.Volumes, "baton-data:/var/lib/baton") || c.Volumes == nil {
		t.Errorf("baton: volumes %v, want baton-data:/var/lib/baton, declared", baton.Volumes)
	}
	if _, ok := c.Volumes["baton-data"]; !ok {
		t.Error("volume baton-data not declared")
	}
	var mount bool
	for _, v := range baton.Volumes {
		mount = mount || strings.HasSuffix(v, ":/etc/baton/baton.yaml:ro")
	}
	if !mount {
		t.Error("baton: the config is not mounted read-only at /etc/baton/baton.yaml")
	}
	if !contains(baton.Ports, "127.0.0.1:8081:8081") {
		t.Errorf("baton: ports %v: the admin API must be published on loopback only", baton.Ports)
	}
	if d, err := time.ParseDuration(baton.StopGrace); err != nil || d < 15*time.Second {
		t.Errorf("baton: stop_grace_period %q, want at least 15s for the drain", baton.StopGrace)
	}
	pg, ok := c.Services["postgres"]
	if !ok {
		t.Fatal("compose.yaml: no postgres service (behind a profile)")
	}
	if pg.Environment["POSTGRES_PASSWORD"] != "" {
		t.Error("postgres: password in the compose file")
	}
	if !envFiles(pg.EnvFile)["postgres.env"] {
		t.Error("postgres: the password not from env_file postgres.env")
	}
	// Baton on PostgreSQL: behind the profile with its database (a plain
	// up starts the bbolt Baton alone), its config the PostgreSQL one,
	// the DSN from an env_file.
	bpg, ok := c.Services["baton-pg"]
	if !ok {
		t.Fatal("compose.yaml: no baton-pg service")
	}
	if !contains(bpg.Profiles, "postgres") || !contains(pg.Profiles, "postgres") || len(baton.Profiles) != 0 {
		t.Errorf("profiles: baton %v, baton-pg %v, postgres %v: want the bbolt Baton by default and the other two behind postgres", baton.Profiles, bpg.Profiles, pg.Profiles)
	}
	if !contains(bpg.Volumes, "./baton-postgres.yaml:/etc/baton/baton.yaml:ro") {
		t.Errorf("baton-pg: volumes %v, want the PostgreSQL config mounted", bpg.Volumes)
	}
	if f := envFiles(bpg.EnvFile); !f["baton.env"] || !f["postgres.env"] || len(bpg.Environment) > 0 {
		t.Errorf("baton-pg: env_file %v, environment %v: secrets from baton.env and postgres.env only", f, bpg.Environment)
	}
	if bpg.Image != baton.Image {
		t.Errorf("baton-pg runs image %q, baton %q: one image", bpg.Image, baton.Image)
	}
}

// envFiles reads env_file entries in both of compose's forms.
func envFiles(nodes []yaml.Node) map[string]bool {
	out := map[string]bool{}
	for _, n := range nodes {
		switch n.Kind {
		case yaml.ScalarNode:
			out[n.Value] = true
		case yaml.MappingNode:
			var e struct {
				Path string `yaml:"path"`
			}
			if n.Decode(&e) == nil {
				out[e.Path] = true
			}
		}
	}
	return out
}

// The container's config, with the example's env file, is a config
// baton check accepts, with the paths the image uses.
func TestContainerConfig(t *testing.T) {
	env := readEnvFile(t, "baton.env.example")
	cfg, err := config.Load("baton.yaml", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("baton.yaml with baton.env.example: %v", err)
	}
	if cfg.Data != "/var/lib/baton/baton.db" || cfg.Listen != ":8080" || cfg.Admin.Listen != ":8081" {
		t.Errorf("data %q, listen %q, admin %q: not what the image and compose expect", cfg.Data, cfg.Listen, cfg.Admin.Listen)
	}
	for k, v := range readEnvFile(t, "postgres.env.example") {
		env[k] = v
	}
	pg, err := config.Load("baton-postgres.yaml", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("baton-postgres.yaml with the example env files: %v", err)
	}
	if pg.Store.Postgres == nil || pg.Store.Postgres.Schema != "baton" || pg.Data != "" || pg.Listen != ":8080" || pg.Admin.Listen != ":8081" {
		t.Errorf("baton-postgres.yaml: store %+v, data %q, listen %q, admin %q", pg.Store.Postgres, pg.Data, pg.Listen, pg.Admin.Listen)
	}
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not KEY=value", path, n+1)
		}
		env[k] = v
	}
	return env
}
