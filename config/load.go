package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	File  string
	Line  int
	Field string // path such as apps[1].adapter.url
	Msg   string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors lists every problem found in a config file, in line order.
type Errors []Problem

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// LookupEnv reads an environment variable; os.LookupEnv in production.
type LookupEnv func(name string) (string, bool)

// Load reads, checks and resolves the config at path, reading secrets with
// env. Every problem is reported at once, as Errors.
func Load(path string, env LookupEnv) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b, env)
}

// LoadOffline is Load for a machine without the secrets, such as CI: the
// structure and every reference are checked, every *_env key must still
// be a variable name and no secret may be written in the file, but a
// variable that is not set is no error. It returns the names of the
// variables not set, whose values (length, distinctness) went unchecked.
func LoadOffline(path string, env LookupEnv) (*Config, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	return parse(path, b, env, true)
}

// Parse is Load on bytes already read; file names them in errors.
func Parse(file string, b []byte, env LookupEnv) (*Config, error) {
	cfg, _, err := parse(file, b, env, false)
	return cfg, err
}

func parse(file string, b []byte, env LookupEnv, offline bool) (*Config, []string, error) {
	lines := fieldLines{}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, nil, Errors{yamlProblem(file, err, lines)}
	}
	lines.walk(&root, "")

	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var out Errors
			for _, msg := range te.Errors {
				out = append(out, typeProblem(file, msg, lines))
			}
			return nil, nil, out
		}
		return nil, nil, Errors{yamlProblem(file, err, lines)}
	}
	cfg.Path = file
	cfg.applyDefaults()
	v := &validator{file: file, lines: lines, env: env, offline: offline}
	v.config(&cfg)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
		return nil, nil, v.errs
	}
	return &cfg, v.unset, nil
}

// fieldLines maps field paths to the line they are on.
type fieldLines map[string]int

func (fl fieldLines) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			fl.walk(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if _, seen := fl[p]; !seen {
				fl[p] = k.Line
			}
			fl.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			fl[p] = c.Line
			fl.walk(c, p)
		}
	}
}

// line finds the line of path, or of its nearest ancestor that is in the
// file (a missing field is reported where its parent is).
func (fl fieldLines) line(path string) int {
	for path != "" {
		if l, ok := fl[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// pathAt returns the field path on a line for decoder errors that name
// only the line: the one whose last key is key when given, else the
// deepest.
func (fl fieldLines) pathAt(line int, key string) string {
	best := ""
	for p, l := range fl {
		if l != line {
			continue
		}
		if key != "" && (p == key || strings.HasSuffix(p, "."+key)) {
			return p
		}
		if key == "" && len(p) > len(best) {
			best = p
		}
	}
	return best
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type`)
var wrongTypeRE = regexp.MustCompile("^cannot unmarshal !!(\\w+) `([^`]*)` into (\\S+)$")

func typeProblem(file, msg string, fl fieldLines) Problem {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return Problem{File: file, Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	p := Problem{File: file, Line: line, Field: fl.pathAt(line, ""), Msg: m[2]}
	if u := unknownFieldRE.FindStringSubmatch(m[2]); u != nil {
		p.Field = fl.pathAt(line, u[1])
		p.Msg = "unknown field " + strconv.Quote(u[1])
	} else if w := wrongTypeRE.FindStringSubmatch(m[2]); w != nil {
		p.Msg = fmt.Sprintf("%q is a %s, want %s", w[2], yamlKind(w[1]), goKind(w[3]))
	}
	return p
}

func yamlKind(tag string) string {
	switch tag {
	case "str":
		return "string"
	case "seq":
		return "list"
	case "map":
		return "mapping"
	}
	return tag
}

func goKind(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "time.Duration":
		return "a duration such as 10s"
	case strings.HasPrefix(t, "int"):
		return "an integer"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	}
	return "a " + strings.TrimPrefix(t, "config.")
}

func yamlProblem(file string, err error, _ fieldLines) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Msg: m[2]}
	}
	return Problem{File: file, Msg: msg}
}
