package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/metaformat"
	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
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
		ad, err := reg.Build(a.Adapter.Type, adapters.Settings{URL: a.Adapter.URL, Secret: a.Adapter.Secret.Reveal(), Timeout: a.Adapter.Timeout, Client: client})
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
}

// Server is a whole Baton process but its store: the Orchestrator and
// its two listeners.
type Server struct {
	O   *Orchestrator
	cfg *config.Config
	log *zap.Logger

	pl, al net.Listener // given in ServerOptions, or nil

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
	// One pooled client for forwarding: keep-alive connections up to the
	// forwarding concurrency (Go's default of 2 idle per host halves it).
	maxConc := cfg.Delivery.Concurrency
	for _, a := range cfg.Apps {
		if a.Adapter != nil {
			maxConc = max(maxConc, a.Adapter.Concurrency)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = maxConc
	botClient := &http.Client{Transport: tr}
	ads, err := BuildAdapters(cfg, Registry(), botClient)
	if err != nil {
		return nil, err
	}
	graph, err := messenger.NewClient(messenger.ClientOptions{BaseURL: cfg.Graph.URL, Version: cfg.Graph.Version, HTTPClient: &http.Client{Timeout: cfg.Graph.Timeout}})
	if err != nil {
		return nil, err
	}
	o, err := New(cfg, Deps{Store: st, Graph: graph, Clock: opts.Clock, Log: log, Adapters: ads})
	if err != nil {
		return nil, err
	}
	return &Server{O: o, cfg: cfg, log: log, listening: make(chan struct{}), pl: opts.Public, al: opts.Admin}, nil
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
	public := &http.Server{Handler: s.O.Handler(), ReadHeaderTimeout: 10 * time.Second}
	admin := &http.Server{Handler: s.O.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 3)
	go func() { errc <- serve(public, pl) }()
	go func() { errc <- serve(admin, al) }()
	close(s.listening)
	s.log.Info("baton serving", zap.String("public", s.public), zap.String("admin", s.admin), zap.String("data", s.cfg.Data))

	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- s.O.Run(runCtx) }()

	var first error
	select {
	case <-ctx.Done():
	case err := <-errc:
		first = err
	case err := <-runDone:
		first = err
		runDone <- nil
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = public.Shutdown(shutdown) // webhooks in flight finish their durable write
	_ = admin.Shutdown(shutdown)
	stopRun()
	<-runDone
	return first
}

func serve(srv *http.Server, l net.Listener) error {
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
