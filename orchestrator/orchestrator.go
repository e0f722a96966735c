// Package orchestrator wires Baton together: it builds the parts from the
// config, runs their background work under one owner, and composes their
// routes on the two listeners. The parts, in the order a webhook meets
// them:
//
//	ingress   read, verify, parse, route inside the group commit, 200
//	threads   the record of who owns each thread; thread control, reconcile, expiry
//	handover  the rules and their durable jobs
//	dispatch  the outbox to the bots: lanes, attempts, backoff, bot health
//	api       the bot API (/v1) and the admin API (/admin)
//	graphapi  the Graph-compatible endpoint (/graph) and the send policy
//	deletion  a person's data erased; Meta's data deletion callback
//
// topology, recent, metrics and apierr are what they share.
package orchestrator

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/orchestrator/console"
	"github.com/batonhq/baton/orchestrator/deletion"
	"github.com/batonhq/baton/orchestrator/dispatch"
	"github.com/batonhq/baton/orchestrator/graphapi"
	"github.com/batonhq/baton/orchestrator/handover"
	"github.com/batonhq/baton/orchestrator/ingress"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/people"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// recentErrors is how many problems /admin/errors keeps.
const recentErrors = 200

// Graph is every Graph API call Baton makes; *messenger.Client is one.
type Graph interface {
	threads.Graph
	Send(ctx context.Context, cred messenger.Credentials, req *messenger.SendRequest) (*messenger.SendResponse, error)
	RawBody(ctx context.Context, method string, cred messenger.Credentials, edge string, q url.Values, contentType string, payload []byte) (int, []byte, error)
}

// Deps are what an Orchestrator needs from outside.
type Deps struct {
	Store    store.Store
	Graph    Graph
	Clock    clock.Clock
	Log      *zap.Logger
	Adapters map[string]adapters.Adapter // by app name, for hosted apps
	// Metrics and Errors, when set, outlive this Orchestrator (a Server
	// keeps them across reloads, so that counters and /admin/errors do
	// not start again); the caller then registers the store's and the
	// outbox's gauges itself. Otherwise New makes its own.
	Metrics *metrics.Set
	Errors  *recent.Errors
	// BodyBudget, when set, is the webhook body budget shared across
	// reloads (webhooks.max_inflight_bytes takes a restart); otherwise
	// the ingress makes its own.
	BodyBudget *ingress.Budget
	// Cluster, when set, makes this Orchestrator one replica's of several
	// on a sharded store: Store is then the replica's scope of
	// Cluster.Shared, which the Server makes again whenever the shards
	// the replica holds change.
	Cluster *Cluster
}

// Cluster is what one replica of several needs beside its scope: the
// ingress's (the whole store, the inbound queue, the scope, the shard of
// a thread), and what the admin API reads of the cluster.
type Cluster struct {
	ingress.Cluster
	// Status reads the replicas and the leases for GET /admin/cluster.
	Status func(ctx context.Context) (any, error)
	// Remote makes a call on a shard's owner on behalf of a request's
	// client (forward.Forwarder.Send).
	Remote func(r *http.Request, shard int, method, path string) (int, []byte, error)
}

// singleton says whether this Orchestrator runs the work done once for
// the whole store: the sweeps and resuming data deletion requests. In a
// cluster, the holder of shard 0 does.
func (o *Orchestrator) singleton() bool {
	return o.cluster == nil || slices.Contains(o.cluster.Scope.Shards(), 0)
}

// Orchestrator is one running Baton: its parts, wired.
type Orchestrator struct {
	log        *zap.Logger
	threads    *threads.Service
	rules      *handover.Engine
	dispatcher *dispatch.Dispatcher
	ingress    *ingress.Ingress
	api        *api.API
	graph      *graphapi.Endpoint
	deletion   *deletion.Service
	people     *people.Learner // nil unless webhooks.learn_names
	console    *console.Console
	health     *dispatch.Health
	hosted     []string // the hosted apps' names, for the bots' gauges
	cluster    *Cluster // nil: one process holds the store

	ready     chan struct{}
	readyOnce sync.Once
}

// New builds an Orchestrator; Run starts its background work.
func New(cfg *config.Config, d Deps) (*Orchestrator, error) {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	top, err := topology.New(cfg, d.Adapters)
	if err != nil {
		return nil, err
	}
	m, own := d.Metrics, d.Metrics == nil
	if own {
		m = metrics.New()
		m.RegisterStore(d.Store)
	}
	errs := d.Errors
	if errs == nil {
		errs = recent.New(recentErrors, d.Clock, d.Log.Named("errors"), m.Errors)
	}
	o := &Orchestrator{log: d.Log, ready: make(chan struct{}), cluster: d.Cluster}
	// What crosses threads (a person's erase) writes the whole store.
	shared := d.Store
	var owns func(store.ThreadKey) error
	var inCluster *ingress.Cluster
	if c := d.Cluster; c != nil {
		shared = c.Shared
		owns = func(k store.ThreadKey) error {
			if s := c.ShardOf(k); !c.Scope.Owns(s) {
				return &store.NotOwnedError{Key: k, Shard: s}
			}
			return nil
		}
		inCluster = &c.Cluster
	}

	health := dispatch.NewHealth()
	o.console = console.New(console.Deps{Store: d.Store, Topology: top, Health: health, Clock: d.Clock, Log: d.Log.Named("console"),
		AdminToken: cfg.Admin.Token.Reveal()})
	expiryBell, jobBell := clock.NewBell(), clock.NewBell()
	// A change of owner (every one wakes the loops) shows in open consoles.
	wake := func() { expiryBell.Ring(); jobBell.Ring(); o.console.Poke() }
	ledger := threads.NewLedger(m.Transitions, handover.AfterTransition, wake, d.Log.Named("threads"))
	o.threads = threads.New(threads.Deps{Store: d.Store, Topology: top, Ledger: ledger, Graph: d.Graph, Clock: d.Clock,
		Log: d.Log.Named("threads"), Metrics: m, Errors: errs, Wake: wake, Expiry: expiryBell, Owns: owns})
	backoff := func(attempt int) time.Duration {
		return dispatch.Backoff(cfg.Delivery.Backoff, cfg.Delivery.MaxBackoff, attempt)
	}
	o.rules = handover.New(handover.Deps{Store: d.Store, Topology: top, Threads: o.threads, Sender: d.Graph, Health: health, Clock: d.Clock,
		Log: d.Log.Named("handover"), Metrics: m, Errors: errs, Backoff: backoff, Jobs: jobBell, Wake: wake})
	var rescan, deletionPoll time.Duration
	if d.Cluster != nil {
		rescan, deletionPoll = clusterRescan, clusterDeletionPoll
	}
	o.dispatcher = dispatch.New(dispatch.Deps{Store: d.Store, Topology: top, Health: health, Clock: d.Clock, Log: d.Log.Named("dispatch"),
		Metrics: m, Errors: errs, Backoff: cfg.Delivery.Backoff, MaxBackoff: cfg.Delivery.MaxBackoff, Rescan: rescan, Owns: owns,
		Hooks: dispatch.Hooks{OnFailure: func(tx store.Tx, dl *store.Delivery) error {
			tx.AfterCommit(o.console.Poke) // a failing bot, maybe a dead letter: the consoles read again
			return o.rules.NoteDeliveryFailure(tx, dl)
		}, OnRecovered: o.rules.BotRecovered, Actions: o.threads.RunActions, Wake: wake}})
	o.health = health
	for _, a := range top.Apps() {
		if a.Hosted {
			o.hosted = append(o.hosted, a.Name)
		}
	}
	if own {
		m.RegisterPending(o.dispatcher.Pending)
		m.RegisterReady(o.Ready)
		m.RegisterBots(func() []string { return o.hosted }, health.FailingSince, d.Clock.Now)
	}
	var learn func(store.ThreadKey)
	if cfg.Webhooks.LearnNames {
		o.people = people.New(people.Deps{Store: d.Store, Topology: top, Graph: d.Graph, Clock: d.Clock, Log: d.Log.Named("people")})
		learn = o.people.Learn
	}
	o.ingress = ingress.New(ingress.Deps{Store: d.Store, Topology: top, Ledger: ledger, Rules: o.rules, Clock: d.Clock, Log: d.Log.Named("ingress"),
		Metrics: m, Errors: errs, Webhooks: cfg.Webhooks, Deliver: o.dispatcher.Add, Reconcile: o.threads.ReconcileLater, Wake: wake,
		LearnPerson: learn, Transcribed: func([]store.ThreadKey) { o.console.Poke() }, Budget: d.BodyBudget, Cluster: inCluster})
	o.deletion = deletion.New(deletion.Deps{Store: shared, Topology: top, Graph: d.Graph, Clock: d.Clock, Log: d.Log.Named("deletion"),
		Errors: errs, PublicURL: cfg.PublicURL, Deliver: o.ownDeliveries(o.dispatcher.Add), Poll: deletionPoll})
	o.api = api.New(api.Deps{Store: d.Store, Topology: top, Threads: o.threads, Deliveries: o.dispatcher, Eraser: o.deletion, Holds: o.rules, Errors: errs, Log: d.Log.Named("api"),
		Gatherer: m.Registry, AdminToken: cfg.Admin.Token.Reveal(), Sessions: o.console, Ready: o.ready, Cluster: clusterStatus(d.Cluster), Remote: clusterRemote(d.Cluster)})
	o.graph = graphapi.New(graphapi.Deps{Store: d.Store, Topology: top, Threads: o.threads, Ledger: ledger, Graph: d.Graph, Clock: d.Clock,
		Metrics: m, Errors: errs, Owns: owns})
	return o, nil
}

// Run recovers unfinished work (intents from a crash, pending
// deliveries), then runs the dispatcher, the rules' jobs, the expiry
// timers, the reconciles and the sweeper until ctx ends, and returns once
// every one of them has stopped. Handlers may serve before Run; readiness
// waits for recovery.
func (o *Orchestrator) Run(ctx context.Context) error { return o.run(ctx, ctx) }

// run is Run with two ends, as a reload stops the old Orchestrator: when
// stop ends, every loop stops taking work, while the deliveries in flight
// go on until work ends too (dispatch.RunUntil).
func (o *Orchestrator) run(stop, work context.Context) error {
	startUp := func() error {
		if err := o.threads.RecoverIntents(stop); err != nil {
			return fmt.Errorf("recover thread-control calls: %w", err)
		}
		if err := o.dispatcher.Load(); err != nil {
			return fmt.Errorf("load outbox: %w", err)
		}
		return nil
	}
	// One process fails its start on a store it cannot read. A replica
	// starts an Orchestrator at every new shard set, most often because
	// the database was out of reach and its leases went: it waits, not
	// ready, and tries again, rather than stopping the process.
	for failures := 1; ; failures++ {
		err := startUp()
		if err == nil {
			break
		}
		if o.cluster == nil {
			return err
		}
		wait := clock.Doubling(failures, 100*time.Millisecond, 5*time.Second)
		o.log.Warn("start on the new shard set failed; trying again", zap.Int("failures", failures), zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-stop.Done():
			return nil
		case <-time.After(wait):
		}
	}
	o.readyOnce.Do(func() { close(o.ready) })
	g, ctx := errgroup.WithContext(stop)
	g.Go(func() error { return o.dispatcher.RunUntil(ctx, work) })
	g.Go(func() error { return o.rules.Run(ctx) })
	g.Go(func() error { return o.threads.RunExpiry(ctx) })
	g.Go(func() error { return o.threads.RunReconciles(ctx) })
	g.Go(func() error { return o.ingress.RunRouter(ctx) }) // a cluster's inbound queue
	if o.singleton() {
		g.Go(func() error { return o.ingress.RunSweeper(ctx) })
		g.Go(func() error { return o.deletion.Run(ctx) }) // resumes unfinished requests first
	}
	if o.people != nil {
		g.Go(func() error { return o.people.Run(ctx) })
	}
	g.Go(func() error { return o.console.Run(ctx) })
	return g.Wait()
}

// clusterRescan is how often one replica of several reads its bots'
// lanes again, for the deliveries another replica enqueued on its threads.
const clusterRescan = 2 * time.Second

// clusterDeletionPoll is how often the replica that does the data deletion
// requests (shard 0's holder) looks for those another replica recorded.
const clusterDeletionPoll = 30 * time.Second

// ownDeliveries hands add the deliveries this replica dispatches: all of
// them, but in a cluster only those of the shards it owns; the owner of
// the others finds them when it reads its lanes again (clusterRescan).
func (o *Orchestrator) ownDeliveries(add func([]store.Delivery)) func([]store.Delivery) {
	c := o.cluster
	if c == nil {
		return add
	}
	return func(ds []store.Delivery) {
		var own []store.Delivery
		for _, d := range ds {
			if c.Scope.Owns(c.ShardOf(store.ThreadKey{Page: d.Page, PSID: d.PSID})) {
				own = append(own, d)
			}
		}
		add(own)
	}
}

// clusterStatus is the admin API's view of the cluster, nil without one.
func clusterStatus(c *Cluster) func(context.Context) (any, error) {
	if c == nil {
		return nil
	}
	return c.Status
}

// clusterRemote is how the admin API reaches another replica's threads,
// nil without a cluster.
func clusterRemote(c *Cluster) func(*http.Request, int, string, string) (int, []byte, error) {
	if c == nil {
		return nil
	}
	return c.Remote
}

// Ready is closed once Run has recovered and started.
func (o *Orchestrator) Ready() <-chan struct{} { return o.ready }

// Handler serves the public listener: webhooks, the bot API, /graph,
// Meta's data deletion callback and its status pages, and health.
func (o *Orchestrator) Handler() http.Handler {
	r := mux.NewRouter()
	o.ingress.Register(r)
	o.api.RegisterBot(r)
	o.graph.Register(r)
	o.deletion.Register(r)
	o.api.RegisterHealth(r)
	r.NotFoundHandler = o.api.NotFound()
	return r
}

// AdminHandler serves the admin listener: the admin API, metrics, health,
// the profiler and the operator console (/console/, on this listener
// alone).
func (o *Orchestrator) AdminHandler() http.Handler {
	m := http.NewServeMux()
	m.Handle("/console/", o.console)
	m.Handle("/", o.api.AdminHandler())
	return m
}

// CloseStreams ends the console's open event streams: the admin
// listener's shutdown would otherwise wait for them.
func (o *Orchestrator) CloseStreams() { o.console.Close() }
