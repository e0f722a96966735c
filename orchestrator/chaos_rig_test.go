package orchestrator_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/webhook"
)

// The rig of TestClusterChaos (cluster_chaos_test.go): the replicas as
// processes, the load balancer in front of them, a recording proxy in
// front of the fake Graph API per replica, and the two recording bots.
// Everything records what a client of Baton could observe, with the wall
// clock the database's clock_timestamp() shares on this machine.

// chaosBoot is one start of a replica's process.
type chaosBoot struct {
	replica string
	app     string // its connections' application_name: what the audit triggers record as the writer
	id      string // its replica id, Name-nonce: the owner its leases carry
	start   time.Time
	end     time.Time // killed; zero while it runs
	log     string
}

// chaosProc is one replica: `baton serve -replica name` on its own ports
// and its own config (chaosConfig).
type chaosProc struct {
	t                   *testing.T
	name, bin, cfg, dir string
	dsn                 string
	pub, adm, internal  string
	mu                  sync.Mutex
	cmd                 *exec.Cmd
	boots               []*chaosBoot
	stopped             bool // SIGSTOP sent, no SIGCONT yet
}

var memberRunning = regexp.MustCompile(`"msg":"cluster member running".*"replica":"([^"]+)"`)

// start runs a new boot of the replica and waits until its admin
// listener's /readyz answers 200 and its log names its replica id.
func (p *chaosProc) start() *chaosBoot {
	p.t.Helper()
	b, err := p.tryStart()
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// tryStart is start for any goroutine: it reports what failed.
func (p *chaosProc) tryStart() (*chaosBoot, error) {
	p.mu.Lock()
	b := &chaosBoot{replica: p.name, app: fmt.Sprintf("%s.%d", p.name, len(p.boots)), start: time.Now()}
	b.log = filepath.Join(p.dir, b.app+".log")
	sep := "?"
	if strings.Contains(p.dsn, "?") {
		sep = "&"
	}
	cmd := exec.Command(p.bin, "serve", "-config", p.cfg, "-replica", p.name, "-listen", p.pub, "-admin-listen", p.adm, "-internal-listen", p.internal)
	cmd.Env = []string{"TEST_PG_DSN=" + p.dsn + sep + "application_name=" + b.app, "CLUSTER_SECRET=" + clusterSecret}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logf, err := os.Create(b.log)
	if err != nil {
		p.mu.Unlock()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return nil, err
	}
	logf.Close()
	p.cmd, p.boots = cmd, append(p.boots, b)
	p.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		if b.id == "" {
			if m := memberRunning.FindSubmatch(readFile(b.log)); m != nil {
				b.id = string(m[1])
			}
		}
		if b.id != "" && httpOK("http://"+p.adm+"/readyz", 500*time.Millisecond) {
			return b, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not ready in 30s:\n%s", b.app, readFile(b.log))
		}
		time.Sleep(20 * time.Millisecond) // a process of its own: nothing to wait on but its answers
	}
}

// kill sends SIGKILL: no shutdown code runs.
func (p *chaosProc) kill() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	at := time.Now()
	_ = p.cmd.Wait()
	p.boots[len(p.boots)-1].end = time.Now() // dead: reaped
	return at
}

// signal sends SIGSTOP or SIGCONT.
func (p *chaosProc) signal(sig syscall.Signal) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Errorf("%s: %v: %v", p.name, sig, err)
	}
	p.stopped = sig == syscall.SIGSTOP
	return time.Now()
}

// shutdown ends the replica at the test's end: SIGTERM's hand-off, or a
// SIGKILL when that takes more than 10 s.
func (p *chaosProc) shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return
	}
	if p.stopped {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.boots[len(p.boots)-1].end = time.Now()
}

func (p *chaosProc) current() *chaosBoot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.boots[len(p.boots)-1]
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func httpOK(u string, timeout time.Duration) bool {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// copyKey is one app's copy of a message.
type copyKey struct{ mid, app string }

// chaosLB is the load balancer Meta's webhooks reach: round robin over the
// replicas whose /readyz answers, as a health-checked balancer does, a
// replica that refuses the connection skipped at once, one that does not
// answer within 2 s answered 502 (Meta sends it again). It records what
// Meta saw: when each message was first posted and which copies were
// acknowledged (2xx), and when.
type chaosLB struct {
	backends []string
	client   *http.Client
	mu       sync.Mutex
	next     int
	down     map[string]bool
	first    map[string]time.Time  // mid -> first posted
	acked    map[copyKey]time.Time // first 2xx
	posts    int
	failed   int // answered non-2xx (Meta retries)
	srv      *httptest.Server
}

func newChaosLB(t *testing.T, backends []string) *chaosLB {
	lb := &chaosLB{backends: backends, down: map[string]bool{}, first: map[string]time.Time{}, acked: map[copyKey]time.Time{},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, ResponseHeaderTimeout: 2 * time.Second}}}
	for _, b := range backends {
		lb.down[b] = true // until its first health check
	}
	lb.srv = httptest.NewServer(http.HandlerFunc(lb.serve))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, b := range backends {
		wg.Add(1)
		go func() { defer wg.Done(); lb.check(ctx, b) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait(); lb.srv.Close(); lb.client.CloseIdleConnections() })
	return lb
}

// check marks b up or down by its /readyz every 100 ms.
func (lb *chaosLB) check(ctx context.Context, b string) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		up := httpOK("http://"+b+"/readyz", 300*time.Millisecond)
		lb.mu.Lock()
		lb.down[b] = !up
		lb.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pick is the next backend up, in turn; "" when none is.
func (lb *chaosLB) pick(skip map[string]bool) string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for range lb.backends {
		b := lb.backends[lb.next%len(lb.backends)]
		lb.next++
		if !lb.down[b] && !skip[b] {
			return b
		}
	}
	return ""
}

// webhookMids are the person's messages in a webhook body.
func webhookMids(body []byte) []string {
	var env struct {
		Entry []struct {
			Messaging []struct {
				Message *struct {
					Mid    string `json:"mid"`
					IsEcho bool   `json:"is_echo"`
				} `json:"message"`
			} `json:"messaging"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &env) != nil {
		return nil
	}
	var out []string
	for _, e := range env.Entry {
		for _, m := range e.Messaging {
			if m.Message != nil && !m.Message.IsEcho && m.Message.Mid != "" {
				out = append(out, m.Message.Mid)
			}
		}
	}
	return out
}

func (lb *chaosLB) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	app := strings.TrimPrefix(r.URL.Path, "/webhooks/")
	mids := webhookMids(body)
	now := time.Now()
	lb.mu.Lock()
	lb.posts++
	for _, m := range mids {
		if _, ok := lb.first[m]; !ok {
			lb.first[m] = now
		}
	}
	lb.mu.Unlock()
	status, answer := lb.forward(r, body)
	lb.mu.Lock()
	if status/100 == 2 {
		at := time.Now()
		for _, m := range mids {
			if _, ok := lb.acked[copyKey{m, app}]; !ok {
				lb.acked[copyKey{m, app}] = at
			}
		}
	} else {
		lb.failed++
	}
	lb.mu.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

func (lb *chaosLB) forward(r *http.Request, body []byte) (int, []byte) {
	refused := map[string]bool{}
	for {
		b := lb.pick(refused)
		if b == "" {
			return http.StatusServiceUnavailable, []byte("no replica up")
		}
		req, _ := http.NewRequest(r.Method, "http://"+b+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := lb.client.Do(req)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) { // nobody there: as good as down, try the next
				refused[b] = true
				continue
			}
			return http.StatusBadGateway, []byte(err.Error())
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, answer
	}
}

// proxiedCall is one Graph call a replica made, as its proxy saw it.
type proxiedCall struct {
	replica   string
	call, ret time.Time
	op        string // the edge: pass_thread_control, thread_owner, ...
	psid, app string // app: the caller, by its page token
	target    string // target_app_id
	metadata  string
	status    int
	ok        bool // a thread-control call Meta applied
}

// threadControl says whether the call asks Meta to change the owner.
func (c proxiedCall) threadControl() bool {
	switch c.op {
	case "pass_thread_control", "take_thread_control", "release_thread_control":
		return true
	}
	return false
}

// graphRecorder is the Graph API each replica reaches (its graph.url):
// one proxy per replica in front of the fake platform's, recording who
// asked what and what Meta answered.
type graphRecorder struct {
	fake   http.Handler
	tokens map[string]string // page token -> app name
	mu     sync.Mutex
	calls  []proxiedCall
}

func (g *graphRecorder) serve(t *testing.T, replica string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := proxiedCall{replica: replica, call: time.Now(), op: r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]}
		body, _ := io.ReadAll(r.Body)
		var in struct {
			Recipient struct {
				ID string `json:"id"`
			} `json:"recipient"`
			Target   string `json:"target_app_id"`
			Metadata string `json:"metadata"`
		}
		_ = json.Unmarshal(body, &in)
		c.psid, c.target, c.metadata = in.Recipient.ID, in.Target, in.Metadata
		if c.psid == "" {
			c.psid = r.URL.Query().Get("recipient")
		}
		c.app = g.tokens[r.URL.Query().Get("access_token")]
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		g.fake.ServeHTTP(rec, r)
		c.ret, c.status = time.Now(), rec.Code
		c.ok = c.threadControl() && rec.Code == http.StatusOK && bytes.Contains(rec.Body.Bytes(), []byte(`"success":true`))
		g.mu.Lock()
		g.calls = append(g.calls, c)
		g.mu.Unlock()
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (g *graphRecorder) list() []proxiedCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]proxiedCall(nil), g.calls...)
}

// chaosDelivery is one delivery a bot answered 200.
type chaosDelivery struct {
	at                time.Time
	app               string
	via               string // the replica that delivered it: each one's adapter URL has its name
	id, psid, channel string
	kind, owner, mid  string // owner: the owner's app id by Baton's record when routed
}

// chaosBot is a bot behind Baton's http adapter: it checks the signature,
// records each delivery, and answers with actions (handoff, when set: the
// support bot hands a share of its threads to the inbox).
type chaosBot struct {
	app     string
	key     []byte
	handoff func(d adapters.Delivery) []adapters.Action
	mu      sync.Mutex
	got     []chaosDelivery
	bad     int // unsigned or undecodable requests
	url     string
}

func newChaosBot(t *testing.T, app, secret string, handoff func(adapters.Delivery) []adapters.Action) *chaosBot {
	key, _ := webhook.Key(secret)
	b := &chaosBot{app: app, key: key, handoff: handoff}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var d adapters.Delivery
		if webhook.Verify(b.key, r.Header, body, time.Now(), time.Hour) != nil || json.Unmarshal(body, &d) != nil {
			b.mu.Lock()
			b.bad++
			b.mu.Unlock()
			http.Error(w, "bad delivery", http.StatusBadRequest)
			return
		}
		var ev struct {
			Message struct {
				Mid string `json:"mid"`
			} `json:"message"`
		}
		_ = json.Unmarshal(d.Event, &ev)
		b.mu.Lock()
		b.got = append(b.got, chaosDelivery{at: time.Now(), app: app, via: strings.TrimPrefix(r.URL.Path, "/"), id: d.ID, psid: d.PSID, channel: d.Channel, kind: d.Kind,
			owner: d.Thread.OwnerAppID, mid: ev.Message.Mid})
		b.mu.Unlock()
		var out struct {
			Actions []adapters.Action `json:"actions,omitempty"`
		}
		if b.handoff != nil {
			out.Actions = b.handoff(d)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

func (b *chaosBot) deliveries() []chaosDelivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chaosDelivery(nil), b.got...)
}

// tailLog is the end of a replica's log, for a failure's message.
func tailLog(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var ring []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ring = append(ring, sc.Text())
		if len(ring) > lines {
			ring = ring[1:]
		}
	}
	return strings.Join(ring, "\n")
}
