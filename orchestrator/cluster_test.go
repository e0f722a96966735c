package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/pgtest"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
	"github.com/batonhq/baton/orchestrator"
	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/orchestrator/cluster"
	"github.com/batonhq/baton/store/postgres"
)

// pgDSN is the throw-away PostgreSQL of scripts/pg.sh; without one the
// test skips, loudly, unless CI or BATON_REQUIRE_PG=1 requires it.
func pgDSN(t *testing.T) string {
	t.Helper()
	return pgtest.DSN(t, "./orchestrator -run Cluster")
}

// pgSchema is a schema of the test's own, dropped when it ends.
func pgSchema(t *testing.T, dsn, prefix string) string {
	schema := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			t.Error(err)
		}
	})
	return schema
}

// roundRobin is the load balancer in front of the replicas: each request
// goes to the next one up, as a balancer that health-checks them would
// send it (a replica that refuses the connection is skipped).
type roundRobin struct {
	mu       sync.Mutex
	backends []string
	next     int
	down     map[string]bool
	srv      *http.Server
	url      string
}

func newRoundRobin(t *testing.T, backends []string) *roundRobin {
	rr := &roundRobin{backends: backends, down: map[string]bool{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxies := map[string]*httputil.ReverseProxy{}
	for _, b := range backends {
		u, _ := url.Parse("http://" + b)
		p := httputil.NewSingleHostReverseProxy(u)
		p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
		proxies[b] = p
	}
	rr.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rr.mu.Lock()
		var b string
		for range rr.backends {
			b = rr.backends[rr.next%len(rr.backends)]
			rr.next++
			if !rr.down[b] {
				break
			}
		}
		rr.mu.Unlock()
		proxies[b].ServeHTTP(w, r)
	})}
	go func() { _ = rr.srv.Serve(l) }()
	t.Cleanup(func() { _ = rr.srv.Close() })
	rr.url = "http://" + l.Addr().String()
	return rr
}

func (rr *roundRobin) setDown(b string, down bool) {
	rr.mu.Lock()
	rr.down[b] = down
	rr.mu.Unlock()
}

// replica is one in-process baton serve of the cluster.
type replica struct {
	name     string
	public   string
	admin    string
	internal string
	srv      *orchestrator.Server
	db       *postgres.DB
	stop     func()
}

const clusterSecret = "cluster-secret-0123456789"

func startReplica(t *testing.T, name, dsn, schema, platURL, botURL, billingURL string) *replica {
	t.Helper()
	// The listeners are open before the config names them: a port found
	// free and closed again may be another test's by the time it binds.
	var ls []net.Listener
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	r := &replica{name: name, public: ls[0].Addr().String(), admin: ls[1].Addr().String(), internal: ls[2].Addr().String()}
	yaml := fmt.Sprintf(`
listen: %q
admin: {listen: %q, token_env: BATON_ADMIN_TOKEN}
store: {postgres: {dsn_env: TEST_PG_DSN, schema: %s}}
cluster: {name: %s, internal_listen: %q, secret_env: CLUSTER_SECRET, lease_ttl: 3s, lease_margin: 1s}
graph: {url: %q, version: "v21.0"}
delivery: {backoff: 20ms, max_backoff: 200ms, max_attempts: 50}
apps:
  - name: support-bot
    app_id: "%s"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    token_env: SUPPORT_API
    adapter: {type: http, url: %q, secret_env: SUPPORT_HOOK}
  - name: billing-bot
    app_id: "%s"
    secret_env: BILLING_SECRET
    verify_token_env: BILLING_VERIFY
    token_env: BILLING_API
    adapter: {type: http, url: %q, secret_env: BILLING_HOOK}
pages:
  - id: "%s"
    mode: conversation_routing
    primary: support-bot
    secondary: [billing-bot]
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT}
      billing-bot: {token_env: PAGE_TOKEN_BILLING}
`, r.public, r.admin, schema, name, r.internal, platURL, supportID, botURL, billingID, billingURL, pageID)
	lookup := func(k string) (string, bool) {
		switch k {
		case "TEST_PG_DSN":
			return dsn, true
		case "CLUSTER_SECRET":
			return clusterSecret, true
		}
		v, ok := env[k]
		return v, ok
	}
	cfg, err := config.Parse(name+".yaml", []byte(yaml), lookup)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn, postgres.Options{Schema: schema, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := orchestrator.NewServer(cfg, db, orchestrator.ServerOptions{Env: lookup, Log: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named(name),
		Public: ls[0], Admin: ls[1], Internal: ls[2]})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	select {
	case <-srv.Listening():
	case err := <-done:
		t.Fatalf("%s did not start: %v", name, err)
	}
	r.srv, r.db = srv, db
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s stopped with %v", name, err)
			}
			db.Close()
		})
	}
	t.Cleanup(r.stop)
	return r
}

// TestClusterOfThree runs three replicas on one PostgreSQL behind a
// round robin: every message reaches the bot once and in order whichever
// replica Meta reached, a bot's thread call reaches the thread's owner
// whichever replica it reached, and a replica that stops hands its shards
// to the others.
func TestClusterOfThree(t *testing.T) {
	if testing.Short() {
		t.Skip("three replicas on PostgreSQL")
	}
	dsn := pgDSN(t)
	schema := pgSchema(t, dsn, "cluster")
	support, billing := newBot(t, env["SUPPORT_HOOK"]), newBot(t, env["BILLING_HOOK"])
	plat := httpServe(t, nil)
	names := []string{"r1", "r2", "r3"}
	reps := make([]*replica, len(names))
	var publics []string
	for i, n := range names {
		reps[i] = startReplica(t, n, dsn, schema, plat.url, support.srv.URL, billing.srv.URL)
		publics = append(publics, reps[i].public)
	}
	lb := newRoundRobin(t, publics)
	p, err := messengertest.New(messengertest.Config{
		Apps: []messengertest.AppConfig{
			{Name: "support-bot", ID: supportID, Secret: env["SUPPORT_SECRET"], VerifyToken: env["SUPPORT_VERIFY"], CallbackURL: lb.url + "/webhooks/support-bot"},
			{Name: "billing-bot", ID: billingID, Secret: env["BILLING_SECRET"], VerifyToken: env["BILLING_VERIFY"], CallbackURL: lb.url + "/webhooks/billing-bot"},
		},
		Pages: []messengertest.PageConfig{{ID: pageID, Mode: messengertest.ModeConversationRouting, DefaultApp: "support-bot",
			Apps: map[string]messengertest.PageAppConfig{"support-bot": {Token: "PT_SUPPORT", Takeover: true}, "billing-bot": {Token: "PT_BILLING"}}}},
		Settings: messengertest.Settings{WebhookRetries: 100, WebhookRetryDelay: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	plat.set(p.Handler())

	// Every shard gets one owner among the three.
	waitShards := func(live []*replica) cluster.Status {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			st, err := cluster.ReadStatus(context.Background(), live[0].db)
			if err != nil {
				t.Fatal(err)
			}
			owners := map[string]bool{}
			for _, l := range st.Leases {
				if l.Held {
					owners[cluster.NameOf(l.Owner)] = true
				}
			}
			if st.Held == 256 && len(owners) == len(live) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("shards not spread over %d replicas: %+v", len(live), st)
			}
			time.Sleep(20 * time.Millisecond) // the leases are the database's: nothing announces them here
		}
	}
	waitShards(reps)

	psids := make([]string, 24)
	for i := range psids {
		psids[i] = fmt.Sprintf("71234567890%05d", i)
	}
	say := func(psid, text string) {
		t.Helper()
		var out any
		if st := doJSON(t, "POST", plat.url+"/_platform/pages/"+pageID+"/users/"+psid+"/messages?wait=true", "", map[string]string{"text": text}, &out); st != 200 {
			t.Fatalf("say: %d %v", st, out)
		}
	}
	const rounds = 4
	for r := range rounds {
		for _, ps := range psids {
			say(ps, fmt.Sprintf("m%d", r))
		}
	}
	got := map[string][]string{}
	for range rounds * len(psids) {
		d := support.next()
		got[d.PSID] = append(got[d.PSID], text(d))
	}
	for _, ps := range psids {
		if fmt.Sprint(got[ps]) != "[m0 m1 m2 m3]" {
			t.Fatalf("thread %s got %v, want m0..m3 in order", ps, got[ps])
		}
	}

	// A bot's pass reaches the owner whichever replica it reached: each
	// thread through each replica's public listener in turn.
	for i, ps := range psids {
		rep := reps[i%len(reps)]
		var tv api.ThreadView
		st := doJSON(t, "POST", "http://"+rep.public+"/v1/threads/"+pageID+"/"+ps+"/pass", env["SUPPORT_API"], map[string]string{"to": "billing-bot"}, &tv)
		if st != 200 || tv.Owner != "billing-bot" {
			t.Fatalf("pass of %s through %s: %d %+v", ps, rep.name, st, tv)
		}
		th, _ := p.Thread(pageID, messenger.ID(ps))
		if th.OwnerAppID == nil || string(*th.OwnerAppID) != billingID {
			t.Fatalf("Meta's owner of %s: %v", ps, th.OwnerAppID)
		}
	}
	// An operator's take through any admin listener, too.
	for i, ps := range psids {
		rep := reps[(i+1)%len(reps)]
		var tv api.ThreadView
		if st := doJSON(t, "POST", "http://"+rep.admin+"/admin/threads/"+pageID+"/"+ps+"/take", adminToken, map[string]string{"app": "support-bot"}, &tv); st != 200 || tv.Owner != "support-bot" {
			t.Fatalf("admin take of %s through %s: %d %+v", ps, rep.name, st, tv)
		}
	}

	// Dead letters on every replica's threads: one operator's retry of
	// all of them, through one replica, puts back each on its owner.
	support.setRespond(func(d adapters.Delivery) (int, string) {
		if text(d) == "doom" {
			return 400, "no"
		}
		return 200, ""
	})
	for _, ps := range psids {
		say(ps, "doom")
	}
	var dead struct {
		Deliveries []json.RawMessage `json:"deliveries"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(dead.Deliveries) < len(psids) {
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters, want %d", len(dead.Deliveries), len(psids))
		}
		time.Sleep(20 * time.Millisecond) // the dispatchers' attempts: nothing announces a dead letter here
		doJSON(t, "GET", "http://"+reps[1].admin+"/admin/deliveries?status=dead&limit=100", adminToken, nil, &dead)
	}
	support.setRespond(nil)
	var retried struct{ Retried, Failed int }
	if st := doJSON(t, "POST", "http://"+reps[1].admin+"/admin/deliveries/retry?app=support-bot", adminToken, nil, &retried); st != 200 || retried.Retried != len(psids) || retried.Failed != 0 {
		t.Fatalf("retry of every dead letter through r2: %d %+v", st, retried)
	}
	doomed := map[string]bool{} // delivery ids of the dead letters put back
	for range psids {
		d := support.next()
		if text(d) != "doom" || d.Retried == nil {
			t.Fatalf("after the retry: %q %+v", text(d), d.Retried)
		}
		doomed[d.ID] = true
	}

	// r3 stops (SIGTERM's path): the others hold every shard well before
	// its leases would have run out, and messages go on reaching the bot.
	lb.setDown(reps[2].public, true)
	stopped := time.Now()
	reps[2].stop()
	waitShards(reps[:2])
	if took := time.Since(stopped); took > 3*time.Second {
		t.Errorf("the hand-off took %s, as long as the lease TTL", took)
	}
	for _, ps := range psids {
		say(ps, "after")
	}
	seen := map[string]bool{}
	for len(seen) < len(psids) {
		d := support.next()
		if doomed[d.ID] {
			// At least once: a retried dead letter delivered by r3 just
			// before it stopped, whose done mark did not commit, comes
			// again from the shard's next owner, under its own id.
			continue
		}
		if text(d) != "after" || seen[d.PSID] {
			t.Fatalf("after the hand-off %s got %q (delivery %s)", d.PSID, text(d), d.ID)
		}
		seen[d.PSID] = true
	}
	var st cluster.Status
	if code := doJSON(t, "GET", "http://"+reps[0].admin+"/admin/cluster", adminToken, nil, &st); code != 200 || st.Held != 256 {
		t.Fatalf("/admin/cluster: %d %+v", code, st)
	}

	// The cluster's alerts read series the replicas export: each metric
	// deploy/prometheus/cluster-alerts.yml names is on a replica's
	// /metrics (an unsigned request to its internal listener first, so
	// that the refusals' series has a value).
	if resp, err := http.Post("http://"+reps[0].internal+"/v1/threads/"+pageID+"/"+psids[0]+"/pass", "application/json", strings.NewReader(`{}`)); err != nil || resp.StatusCode != 401 {
		t.Fatalf("an unsigned request to the internal listener: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	checkClusterAlertMetrics(t, "http://"+reps[0].admin+"/metrics")

	// An erase through either replica: the notice to the page's apps is
	// delivered by the owner of its shard, whichever replica erased.
	for i, ps := range psids[:4] {
		var out map[string]any
		if code := doJSON(t, "POST", "http://"+reps[i%2].admin+"/admin/threads/"+pageID+"/"+ps+"/erase", adminToken, nil, &out); code != 200 {
			t.Fatalf("erase %s: %d %v", ps, code, out)
		}
		for _, b := range []*bot{support, billing} {
			d := b.next()
			for d.Kind != adapters.KindErasure { // the billing bot's handovers, earlier
				d = b.next()
			}
			if !strings.Contains(string(d.Event), ps) {
				t.Fatalf("erasure notice %s, want one for %s", d.Event, ps)
			}
		}
	}
}

// doJSON sends a JSON request and decodes the JSON answer.
func doJSON(t *testing.T, method, u, token string, body, out any) int {
	t.Helper()
	h := &harness{t: t, client: http.DefaultClient}
	return h.do(method, u, token, body, out)
}

// checkClusterAlertMetrics fails the test for each baton_ metric the
// cluster's alert rules use that the replica's /metrics at u lacks.
func checkClusterAlertMetrics(t *testing.T, u string) {
	t.Helper()
	rules, err := os.ReadFile("../deploy/prometheus/cluster-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exposed, _ := io.ReadAll(resp.Body)
	used := regexp.MustCompile(`baton_[a-z_]+`).FindAllString(string(rules), -1)
	if len(used) < 4 {
		t.Fatalf("only %v in the cluster's alerts", used)
	}
	for _, m := range used {
		if !regexp.MustCompile(`(?m)^` + m + `[{ ]`).Match(exposed) {
			t.Errorf("the cluster's alerts use %s, which a replica does not export", m)
		}
	}
}
