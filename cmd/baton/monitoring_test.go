package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// exposition is what one scrape of /metrics showed: the sample names
// (histograms' _bucket, _sum and _count included) with the label names
// each carried.
type exposition map[string]map[string]bool

func scrape(t *testing.T, url string) exposition {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	exp := exposition{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := sample.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if exp[m[1]] == nil {
			exp[m[1]] = map[string]bool{}
		}
		for _, l := range label.FindAllStringSubmatch(m[3], -1) {
			exp[m[1]][l[1]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return exp
}

// selector finds a metric name and, when it has them, its label matchers.
var selector = regexp.MustCompile(`\b((?:baton|go|process)_[a-zA-Z0-9_:]*|up)\b(\{[^}]*\})?`)

// Labels Prometheus adds to every scraped series.
var targetLabels = map[string]bool{"instance": true, "job": true}

// usedMetrics lists the metric selectors in the alert rules' expressions
// and the dashboard's queries, each with where it is used.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where, expr string) {
		for _, m := range selector.FindAllStringSubmatch(expr, -1) {
			used[m[0]] = append(used[m[0]], where)
		}
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			add("alert "+r.Alert, r.Expr)
		}
	}
	b, err = os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "baton.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string                  `json:"title"`
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	for _, v := range dash.Templating.List {
		add("variable "+v.Name, v.Definition)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			add("panel "+p.Title, tg.Expr)
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d metric selectors found in the alerts and the dashboard: the parser missed them", len(used))
	}
	return used
}

// Every metric the alerts and the dashboard use is one a running Baton
// exposes, with the labels they match on: the demo runs through a
// handover with its rules, and a forged webhook, so that the labelled
// series have values.
func TestAlertsAndDashboardUseRealMetrics(t *testing.T) {
	d := startTestDemo(t)
	const psid = "7000000000000009"
	d.personWrites(t, psid, "I want a human")
	eventually(t, "the inbox to own the thread", func() bool { return ownerOf(d.thread(t, psid)) == demoInboxID })
	resp, err := http.Post(d.batonURL+"/webhooks/faq-bot", "application/json", strings.NewReader(`{"object":"page","entry":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned webhook: %s", resp.Status)
	}
	// The FAQ bot sends with a tag Meta retired: the send policy refuses
	// it before Meta.
	req, _ := http.NewRequest(http.MethodPost, d.batonURL+"/graph/v21.0/"+demoPage+"/messages",
		strings.NewReader(`{"recipient":{"id":"`+psid+`"},"messaging_type":"MESSAGE_TAG","tag":"ACCOUNT_UPDATE","message":{"text":"your account"}}`))
	req.Header.Set("Authorization", "Bearer "+d.env["FAQ_BOT_API_TOKEN"])
	req.Header.Set("Content-Type", "application/json")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"code":100`) {
		t.Fatalf("send with a retired tag: %s %s, want it refused", resp.Status, body)
	}
	eventually(t, "a delivery's lag observed", func() bool { return scrape(t, d.adminURL+"/metrics")["baton_delivery_lag_seconds_count"] != nil })
	exp := scrape(t, d.adminURL+"/metrics")
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	for sel, where := range usedMetrics(t) {
		m := selector.FindStringSubmatch(sel)
		name := m[1]
		if name == "up" {
			continue // Prometheus's own, per target
		}
		labels, ok := exp[name]
		if !ok {
			t.Errorf("%s (in %s) is not on a running Baton's /metrics", name, strings.Join(where, ", "))
			continue
		}
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			if !targetLabels[l[1]] && !labels[l[1]] {
				t.Errorf("%s has no label %q (in %s); it has %v", name, l[1], strings.Join(where, ", "), keys(labels))
			}
		}
	}
}

func keys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return fmt.Sprint(ks)
}
