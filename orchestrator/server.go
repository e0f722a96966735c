package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/metaformat"
	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/ingress"
	"github.com/batonhq/baton/orchestrator/metrics"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/tlsserve"
	"github.com/batonhq/baton/store"
)

// Registry returns the adapter types Baton ships, registered explicitly.
func Registry() *adapters.Registry {
	var r adapters.Registry
	// Distinct names: these registrations cannot fail.
	_ = r.Register(webhook.TypeName, webhook.New)
	_ = r.Register(metaformat.TypeName, metaformat.New)
	return &r
}

// BuildAdapters builds each hosted app's adapter from its config; it is the
// one place that knows both config and adapters.
func BuildAdapters(cfg *config.Config, reg *adapters.Registry, client *http.Client) (map[string]adapters.Adapter, error) {
	out := map[string]adapters.Adapter{}
	for _, a := range cfg.Apps {
		if !a.Hosted() {
			continue
		}
		c := client
		if a.Adapter.AllowLinkLocal {
			// The shared client refuses link-local and metadata
			// addresses at connect time; this bot gets a pool without.
			c = adapters.NewClient(adapters.ClientOptions{MaxIdleConnsPerHost: a.Adapter.Concurrency, AllowLinkLocal: true})
		}
		ad, err := reg.Build(a.Adapter.Type, adapters.Settings{URL: a.Adapter.URL, Secret: a.Adapter.Secret.Reveal(), Timeout: a.Adapter.Timeout, Client: c, AllowLinkLocal: a.Adapter.AllowLinkLocal})
		if err != nil {
			return nil, fmt.Errorf("app %s: adapter: %w", a.Name, err)
		}
		out[a.Name] = ad
	}
	return out, nil
}

// ServerOptions adjust a Server for tests and the demo.
type ServerOptions struct {
	Clock clock.Clock
	Log   *zap.Logger
	// Public and Admin, if set, are listeners already open (a caller
	// that must know the ports before Baton runs, such as baton demo);
	// otherwise Run listens on the config's addresses.
	Public, Admin net.Listener
	// Internal, if set, is the cluster's internal listener already open
	// (cluster.internal_listen names its address for the others).
	Internal net.Listener
	// Env reads the secrets when Reload reads the config file again
	// (default os.LookupEnv).
	Env config.LookupEnv
}

// Server is a whole Baton process but its store: the Orchestrator and
// its two listeners, and the gate in front of them that lets Reload swap
// the Orchestrator while they stay open (reload.go).
type Server struct {
	// O is the Orchestrator NewServer built; after a Reload, Current.
	O   *Orchestrator
	cfg *config.Config
	log *zap.Logger

	pl, al net.Listener     // given in ServerOptions, or nil
	tls    *tlsserve.Source // nil: plain HTTP

	// What every generation shares (reload.go).
	st    store.Store
	clock clock.Clock
	env   config.LookupEnv
	m     *metrics.Set
	errs  *recent.Errors
	// budget bounds the webhook bodies in flight (ingress.Budget).
	budget *ingress.Budget
	gate   *gate
	fatal  chan error // a generation's loops ended on their own

	// cluster is set when this is one replica of several (cluster.go).
	cluster *replicaCluster

	reloadMu sync.Mutex // one reload or rescope at a time; running changes under it
	running  bool

	mu        sync.Mutex
	listening chan struct{}
	public    string
	admin     string
}

// NewServer builds everything from cfg on an open store, which the
// caller closes after Run returns.
func NewServer(cfg *config.Config, st store.Store, opts ServerOptions) (*Server, error) {
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{cfg: cfg, log: log, listening: make(chan struct{}), pl: opts.Public, al: opts.Admin,
		st: st, clock: opts.Clock, env: opts.Env, fatal: make(chan error, 1)}
	if s.clock == nil {
		s.clock = clock.System{}
	}
	if s.env == nil {
		s.env = os.LookupEnv
	}
	// Metrics and recent errors outlive a reload: counters go on.
	s.m = metrics.New()
	s.m.RegisterStore(st)
	s.m.RegisterPending(func() int { return s.gate.current().o.dispatcher.Pending() })
	s.m.RegisterReady(func() <-chan struct{} { return s.gate.current().o.Ready() })
	s.m.RegisterBots(func() []string { return s.gate.current().o.hosted },
		func(app string) (time.Time, bool) { return s.gate.current().o.health.FailingSince(app) }, s.clock.Now)
	s.errs = recent.New(recentErrors, s.clock, log.Named("errors"), s.m.Errors)
	// One body budget for the public listener, whatever the generation:
	// requests of the old and the new config share it during a reload.
	s.budget = ingress.NewBudget(cfg.Webhooks.MaxInflightBytes)
	s.m.RegisterBodyBudget(s.budget.InFlight)
	// Certificates first: a missing or broken pair stops Baton here, with
	// the file named, before anything runs. A reload keeps them (tls is a
	// field that needs a restart); the files reload themselves.
	if t := cfg.TLS; t != nil {
		set := tlsserve.Settings{CertFile: t.CertFile, KeyFile: t.KeyFile}
		if a := t.ACME; a != nil {
			set.ACME = &tlsserve.ACME{Domains: a.Domains, CacheDir: a.CacheDir, Email: a.Email, DirectoryURL: a.DirectoryURL, HTTPListen: a.HTTPListen}
		}
		src, err := tlsserve.New(set, tlsserve.Options{Log: log.Named("tls"), Clock: opts.Clock})
		if err != nil {
			return nil, err
		}
		s.tls = src
	}
	if cfg.Cluster != nil {
		rc, err := s.newReplicaCluster(cfg, st)
		if err != nil {
			return nil, err
		}
		rc.l = opts.Internal
		s.cluster = rc
	}
	gen, err := s.build(cfg)
	if err != nil {
		return nil, err
	}
	s.gate, s.O = newGate(gen), gen.o
	return s, nil
}

// Listening is closed once both listeners accept connections.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Addrs are the bound addresses of the public and admin listeners.
func (s *Server) Addrs() (public, admin string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.public, s.admin
}

// Run serves until ctx ends, then shuts down gracefully: stop accepting,
// finish in-flight requests, stop the background work (unfinished
// deliveries stay in the outbox).
func (s *Server) Run(ctx context.Context) error {
	pl, al := s.pl, s.al
	var err error
	if pl == nil {
		if pl, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			if al != nil {
				al.Close()
			}
			return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
		}
	}
	if al == nil {
		if al, err = net.Listen("tcp", s.cfg.Admin.Listen); err != nil {
			pl.Close()
			return fmt.Errorf("admin listen %s: %w", s.cfg.Admin.Listen, err)
		}
	}
	s.mu.Lock()
	s.public, s.admin = pl.Addr().String(), al.Addr().String()
	s.mu.Unlock()
	pubH, admH := s.gate.handler(publicSide), s.gate.handler(adminSide)
	if s.cluster != nil { // a thread's call to another replica's shard is answered by its owner
		pubH, admH = s.cluster.wrap(pubH), s.cluster.wrap(admH)
	}
	public := &http.Server{Handler: pubH, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: readTimeout(s.cfg.Webhooks.MaxBody),
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
	admin := &http.Server{Handler: admH, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: readTimeout(0),
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
	// The console's event streams end with the listener, or its shutdown
	// would wait for them.
	admin.RegisterOnShutdown(func() { s.gate.current().o.CloseStreams() })
	servers := []*http.Server{public, admin}
	// What net/http reports of a connection (a TLS handshake a scanner
	// broke off, plain HTTP sent to the https port) is noise at scale:
	// kept at debug, through the logger rather than on stderr.
	connLog, _ := zap.NewStdLogAt(s.log.Named("http"), zap.DebugLevel)
	public.ErrorLog, admin.ErrorLog = connLog, connLog
	logged := []zap.Field{zap.String("public", s.public), zap.String("admin", s.admin), zap.String("data", s.cfg.Data)}
	if s.tls == nil {
		logged = append(logged, zap.String("tls", "off"))
	} else {
		public.TLSConfig = s.tls.Config()
		if s.cfg.Admin.TLS {
			admin.TLSConfig = s.tls.Config()
		}
		logged = append(append(logged, s.tls.LogFields()...), zap.Bool("admin_tls", s.cfg.Admin.TLS))
	}
	errc := make(chan error, 4)
	if addr, h := s.tlsChallenge(); h != nil {
		// ACME's HTTP-01 answers on its own port; the rest of it redirects
		// to https. It is opened last and fails the start like the others.
		cl, err := net.Listen("tcp", addr)
		if err != nil {
			pl.Close()
			al.Close()
			return fmt.Errorf("tls.acme.http_listen %s: %w", addr, err)
		}
		challenge := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: readTimeout(0),
			IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
		challenge.ErrorLog = connLog
		servers = append(servers, challenge)
		go func() { errc <- serve(challenge, cl) }()
	}
	go func() { errc <- serve(public, pl) }()
	go func() { errc <- serve(admin, al) }()
	close(s.listening)
	s.log.Info("baton serving", logged...)

	s.reloadMu.Lock()
	s.gate.current().start(s.fatal)
	s.running = true
	s.reloadMu.Unlock()
	stopMember := func() {}
	if s.cluster != nil {
		internal, stop, err := s.runCluster(ctx, errc)
		if err != nil {
			errc <- err
		} else {
			servers, stopMember = append(servers, internal), stop
		}
	}

	var first error
	select {
	case <-ctx.Done():
	case err := <-errc:
		first = err
	case err := <-s.fatal:
		first = err
	}
	s.reloadMu.Lock() // a reload or a new shard set under way finishes first
	s.running = false // and none comes after: the leases held are renewed until the handoff
	s.reloadMu.Unlock()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdown) // webhooks in flight finish their durable write
	}
	_ = s.gate.current().halt(0) // an error of its own came on s.fatal
	if s.cluster != nil {
		s.handoff() // every lease released, now that nothing acts on them
		stopMember()
	}
	return first
}

// Bounds on what a client may hold of a listener. Without them a stranger
// keeps a connection, a goroutine and a body's buffer for as long as it
// dribbles bytes.
const (
	// idleTimeout ends a keep-alive connection with no request for that
	// long: Meta and the bots reconnect in a round trip.
	idleTimeout = 2 * time.Minute
	// maxHeaderBytes: Meta's webhook headers are about 1 KB.
	maxHeaderBytes = 64 << 10
	// honestRate is the slowest link a sender may have and still have its
	// largest body read, 1 Mbit/s: a 1 MiB body takes 8.4 s.
	honestRate = 1_000_000 / 8 // bytes a second
	// largestBody is the largest body a route other than the webhooks
	// takes (/graph); the webhooks take webhooks.max_body. A bot's
	// upload to /graph, up to 25 MB, moves its own read deadline
	// (graphapi's readCall) once the bot is known.
	largestBody = 1 << 20
)

// readTimeout bounds reading one request, headers and body: the time the
// largest body takes at an honest but slow rate, and a little more for
// the headers and the round trips. For the default 1 MiB that is 10.4 s,
// twice what Meta waits for an answer (5 s). net/http lifts the deadline
// once the body is read, so the handler's work is not cut short.
func readTimeout(maxBody int64) time.Duration {
	body := max(maxBody, largestBody)
	return 2*time.Second + time.Duration(body)*time.Second/honestRate
}

// tlsChallenge is the ACME HTTP-01 listener's address and handler, or a
// nil handler.
func (s *Server) tlsChallenge() (string, http.Handler) {
	if s.tls == nil {
		return "", nil
	}
	return s.tls.Challenge()
}

// serve serves l, over TLS when srv has a TLSConfig (its certificate
// comes from GetCertificate: no files are named here).
func serve(srv *http.Server, l net.Listener) error {
	serveFn := srv.Serve
	if srv.TLSConfig != nil {
		serveFn = func(l net.Listener) error { return srv.ServeTLS(l, "", "") }
	}
	if err := serveFn(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
