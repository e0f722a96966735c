// Package orchestrator is Baton's heart: the webhook ingress, the router
// that keeps each thread's owner and decides who gets each event, the
// dispatcher that delivers them to bots, the thread-control service that
// makes Meta's calls, the bot API and the admin API. It wires config,
// statemachine, store, messenger and adapters together.
package orchestrator

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// DedupWindow is how long a webhook event is remembered to drop Meta's
// redeliveries (Meta retries for up to 36 hours).
const DedupWindow = 48 * time.Hour

// Orchestrator is one running Baton.
type Orchestrator struct {
	cfg     *config.Config
	store   store.Store
	graph   *messenger.Client
	clock   clock.Clock
	log     *zap.Logger
	metrics *metrics
	errors  *recentErrors

	apps     map[string]*app // by name
	appsByID map[string]*app
	pages    map[string]*page

	dispatcher *dispatcher
	locks      keyedMutex
	wake       chan struct{} // the expiry loop re-reads its next timer
	jobWake    chan struct{} // the job runner re-reads its due jobs
	ready      chan struct{}
	readyOnce  sync.Once
	metricOnce sync.Once
}

func (o *Orchestrator) registerStoreMetricsOnce() { o.metricOnce.Do(o.registerStoreMetrics) }

type appCtxKey struct{}

func contextWithApp(r *http.Request, a *app) context.Context {
	return context.WithValue(r.Context(), appCtxKey{}, a)
}

func appFromContext(r *http.Request) *app {
	a, _ := r.Context().Value(appCtxKey{}).(*app)
	return a
}

type app struct {
	name        string
	id          string
	hosted      bool
	secret      []byte
	verifyToken string
	apiToken    string
	adapter     adapters.Adapter
	standby     bool
	maxAttempts int
	concurrency int
	takeToSend  bool // send_policy.not_owner: take
}

type page struct {
	id      string
	sm      statemachine.Page
	primary string            // app name
	tokens  map[string]string // app name -> page access token
	apps    []*app            // on the page: primary first, then secondaries
	rules   *config.Rules     // nil when the page has none
}

// Deps are what an Orchestrator needs from outside.
type Deps struct {
	Store    store.Store
	Graph    *messenger.Client
	Clock    clock.Clock
	Log      *zap.Logger
	Adapters map[string]adapters.Adapter // by app name, for hosted apps
}

// New builds an Orchestrator; Run starts its background work.
func New(cfg *config.Config, d Deps) (*Orchestrator, error) {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	o := &Orchestrator{
		cfg: cfg, store: d.Store, graph: d.Graph, clock: d.Clock, log: d.Log,
		metrics:  newMetrics(),
		errors:   newRecentErrors(200),
		apps:     map[string]*app{},
		appsByID: map[string]*app{},
		pages:    map[string]*page{},
		wake:     make(chan struct{}, 1),
		jobWake:  make(chan struct{}, 1),
		ready:    make(chan struct{}),
	}
	for _, ac := range cfg.Apps {
		a := &app{name: ac.Name, id: ac.AppID, hosted: ac.Hosted(), takeToSend: ac.SendPolicy.NotOwner == "take"}
		if a.hosted {
			a.secret = []byte(ac.Secret.Reveal())
			a.verifyToken = ac.VerifyToken.Reveal()
			a.apiToken = ac.APIToken.Reveal()
			a.adapter = d.Adapters[ac.Name]
			if a.adapter == nil {
				return nil, fmt.Errorf("app %s: no adapter built", ac.Name)
			}
			a.standby = ac.Adapter.Standby
			a.maxAttempts = ac.Adapter.MaxAttempts
			a.concurrency = ac.Adapter.Concurrency
		}
		o.apps[a.name], o.appsByID[a.id] = a, a
	}
	for _, pc := range cfg.Pages {
		p := &page{id: pc.ID, primary: pc.Primary, tokens: map[string]string{}}
		p.sm = statemachine.Page{Mode: statemachine.Mode(pc.Mode), CanTake: map[string]bool{}}
		if pc.Primary != "" {
			p.sm.Primary = o.apps[pc.Primary].id
			p.apps = append(p.apps, o.apps[pc.Primary])
		}
		for _, s := range pc.Secondary {
			p.apps = append(p.apps, o.apps[s])
		}
		for _, t := range pc.Takeover {
			p.sm.CanTake[o.apps[t].id] = true
		}
		for name, tok := range pc.Tokens {
			p.tokens[name] = tok.Token.Reveal()
		}
		if r := pc.Rules; len(r.Escalate)+len(r.Entry) > 0 || r.Return != nil || r.Requests != nil || r.Failover != nil || r.Hours != nil {
			p.rules = &r
		}
		o.pages[p.id] = p
	}
	o.dispatcher = newDispatcher(o)
	return o, nil
}

// Run recovers unfinished work (intents from a crash, pending deliveries),
// then runs the dispatcher, the expiry timers and the dedup sweeper until
// ctx ends. Handlers may serve before Run; readiness waits for recovery.
func (o *Orchestrator) Run(ctx context.Context) error {
	if err := o.recoverIntents(ctx); err != nil {
		return fmt.Errorf("recover thread-control calls: %w", err)
	}
	if err := o.dispatcher.load(); err != nil {
		return fmt.Errorf("load outbox: %w", err)
	}
	o.readyOnce.Do(func() { close(o.ready) })
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); o.dispatcher.run(ctx) }()
	go func() { defer wg.Done(); o.runJobs(ctx) }()
	go func() { defer wg.Done(); o.runTimers(ctx) }()
	go func() { defer wg.Done(); o.runSweeper(ctx) }()
	wg.Wait()
	return nil
}

// Ready is closed once Run has recovered and started.
func (o *Orchestrator) Ready() <-chan struct{} { return o.ready }

// appName names an app id for people: the YAML name, else the id.
func (o *Orchestrator) appName(id string) string {
	if a := o.appsByID[id]; a != nil {
		return a.name
	}
	return id
}

func (p *page) hasApp(id string) bool {
	for _, a := range p.apps {
		if a.id == id {
			return true
		}
	}
	return false
}

// credentials of a hosted app on a page for Graph calls.
func (o *Orchestrator) credentials(p *page, a *app) (messenger.Credentials, bool) {
	tok, ok := p.tokens[a.name]
	return messenger.Credentials{PageID: messenger.ID(p.id), AccessToken: tok, AppSecret: string(a.secret)}, ok
}

// keyedMutex serialises work on one thread: loading, deciding and saving a
// thread's record happen under its lock, never two at once.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

func (o *Orchestrator) notifyTimers() {
	for _, ch := range []chan struct{}{o.wake, o.jobWake} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Handler serves the public listener: webhooks, the bot API and health.
func (o *Orchestrator) Handler() http.Handler { return o.publicRoutes() }
