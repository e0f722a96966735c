package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
)

// How long a reload may hold the requests that arrive meanwhile. Meta
// waits 5 s for a webhook's answer; the two bounds together keep a held
// webhook well inside it. They are wall time on purpose: they bound real
// requests and real bots, not Baton's own timers.
const (
	// requestDrain bounds the wait for the requests in flight on the old
	// config. Past it the reload gives up, the held requests go on with
	// the old config, and the reload may be asked again.
	requestDrain = 1500 * time.Millisecond
	// deliveryGrace is how long the old dispatcher's deliveries in flight
	// have to finish; the ones still waiting for their bot then are
	// cancelled and stay in the outbox for the new dispatcher (the bot may
	// see such a delivery twice, under the same id, but never from two
	// dispatchers at once).
	deliveryGrace = 1500 * time.Millisecond
)

// liveFields are the config's fields a reload applies: those only the
// parts that New builds hold. Every other field (listen, admin.listen,
// data, webhooks.max_body, max_inflight_bytes and commit_wait, log, and
// any field added later) is held by what outlives a reload (the
// listeners, their read timeout and body budget, the open store, the
// logger) and takes a restart.
var liveFields = []string{
	"public_url", "admin.token_env", "graph", "webhooks.allow_sha1", "webhooks.journal_retention",
	"delivery", "apps", "pages",
}

// needRestart returns the changed fields that a reload cannot apply.
func needRestart(changed []string) []string {
	var out []string
	for _, f := range changed {
		live := false
		for _, l := range liveFields {
			if f == l || strings.HasPrefix(f, l+".") || strings.HasPrefix(f, l+"[") {
				live = true
				break
			}
		}
		if !live {
			out = append(out, f)
		}
	}
	return out
}

// RestartError is a reload refused because fields changed that only a
// restart applies; nothing of the new config was applied.
type RestartError struct{ Fields []string }

func (e *RestartError) Error() string {
	return "these fields change only with a restart: " + strings.Join(e.Fields, ", ")
}

// ErrBusy is a reload given up because requests in flight on the old
// config did not finish within requestDrain.
var ErrBusy = errors.New("requests in flight did not finish")

// generation is one Orchestrator and what was built for it from one
// config. Its loops run from start until halt.
type generation struct {
	cfg           *config.Config
	o             *Orchestrator
	public, admin http.Handler
	client        *http.Client // the pool to the bots, closed when retired

	stop, kill context.CancelFunc
	done       chan struct{} // closed when run returned
	err        error         // what run returned, once done
	halted     atomic.Bool   // run ends because halt asked
}

// build makes a generation from cfg on the server's store, sharing its
// metrics and recent errors. Nothing runs until start.
func (s *Server) build(cfg *config.Config) (*generation, error) {
	// One pooled client for forwarding: keep-alive connections up to the
	// forwarding concurrency (Go's default of 2 idle per host halves it);
	// it follows no redirect and refuses link-local and metadata addresses.
	maxConc := cfg.Delivery.Concurrency
	for _, a := range cfg.Apps {
		if a.Adapter != nil {
			maxConc = max(maxConc, a.Adapter.Concurrency)
		}
	}
	botClient := adapters.NewClient(adapters.ClientOptions{MaxIdleConnsPerHost: maxConc})
	ads, err := BuildAdapters(cfg, Registry(), botClient)
	if err != nil {
		return nil, err
	}
	graph, err := messenger.NewClient(messenger.ClientOptions{BaseURL: cfg.Graph.URL, Version: cfg.Graph.Version, HTTPClient: &http.Client{Timeout: cfg.Graph.Timeout}})
	if err != nil {
		return nil, err
	}
	d := Deps{Store: s.st, Graph: graph, Clock: s.clock, Log: s.log, Adapters: ads, Metrics: s.m, Errors: s.errs, BodyBudget: s.budget}
	if s.cluster != nil {
		d.Store, d.Cluster = s.cluster.deps()
	}
	o, err := New(cfg, d)
	if err != nil {
		return nil, err
	}
	return &generation{cfg: cfg, o: o, public: o.Handler(), admin: o.AdminHandler(), client: botClient, done: make(chan struct{})}, nil
}

// start runs the generation's loops; an end that halt did not ask for
// is reported on fatal.
func (g *generation) start(fatal chan<- error) {
	stop, cancelStop := context.WithCancel(context.Background())
	work, cancelWork := context.WithCancel(context.Background())
	g.stop, g.kill = cancelStop, cancelWork
	go func() {
		g.err = g.o.run(stop, work)
		close(g.done)
		if !g.halted.Load() {
			select {
			case fatal <- g.err:
			default:
			}
		}
	}()
}

// halt stops the loops and waits for them: deliveries in flight have
// grace to finish before they are cancelled.
func (g *generation) halt(grace time.Duration) error {
	g.halted.Store(true)
	g.stop()
	t := time.AfterFunc(grace, g.kill)
	<-g.done
	t.Stop()
	g.kill()
	g.client.CloseIdleConnections()
	return g.err
}

// Reload reads the config file again (the one the server's config came
// from, with the server's environment) and, when it is valid and changes
// only live fields, swaps to an Orchestrator built from it on the same
// store and listeners. New requests wait at the gate while the requests
// in flight finish and the old loops stop (deliveries in flight with
// them); then the new loops start and the held requests go on. An
// invalid file, a change that needs a restart, or a build that fails
// leaves the running config as it was. Each outcome is logged and
// counted in baton_config_reloads_total.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if !s.running {
		return errors.New("reload: the server is not running")
	}
	old := s.gate.current()
	path := old.cfg.Path
	if path == "" {
		return errors.New("reload: the config was not read from a file")
	}
	count := func(result string) { s.m.Reloads.WithLabelValues(result).Inc() }
	cfg, err := config.Load(path, s.env)
	if err != nil {
		var problems config.Errors
		if errors.As(err, &problems) {
			for _, p := range problems {
				s.log.Error("config problem", zap.String("problem", p.String()))
			}
			s.log.Error("config not reloaded, the running one goes on", zap.String("config", path), zap.Int("problems", len(problems)))
		} else {
			s.log.Error("config not reloaded, the running one goes on", zap.String("config", path), zap.Error(err))
		}
		count("invalid")
		return fmt.Errorf("reload %s: %w", path, err)
	}
	changed := config.Diff(old.cfg, cfg)
	if restart := needRestart(changed); len(restart) > 0 {
		s.log.Error("config not reloaded: fields changed that need a restart; the running config goes on",
			zap.String("config", path), zap.Strings("restart_fields", restart))
		count("restart_needed")
		return fmt.Errorf("reload %s: %w", path, &RestartError{Fields: restart})
	}
	if len(changed) == 0 {
		s.log.Info("config reload: nothing changed", zap.String("config", path))
		count("unchanged")
		return nil
	}
	next, err := s.build(cfg)
	if err != nil {
		s.log.Error("config not reloaded: building it failed; the running config goes on", zap.String("config", path), zap.Error(err))
		count("failed")
		return fmt.Errorf("reload %s: %w", path, err)
	}
	pause, err := s.swap(old, next)
	if err != nil {
		next.client.CloseIdleConnections()
		s.log.Error("config not reloaded; the running config goes on", zap.String("config", path), zap.Duration("held", pause), zap.Error(err))
		count("busy")
		return fmt.Errorf("reload %s: %w", path, err)
	}
	s.m.ReloadPause.Observe(pause.Seconds())
	s.log.Info("config reloaded", zap.String("config", path), zap.Strings("changed", changed), zap.Duration("pause", pause))
	count("applied")
	return nil
}

// swap holds new requests, waits for those in flight, stops old and
// starts next, and lets the requests go on to next. It returns how long
// requests were held. Two dispatchers never run at once: next starts
// only once old's Run has returned.
func (s *Server) swap(old, next *generation) (time.Duration, error) {
	start := time.Now()
	if !s.gate.close(requestDrain) {
		s.gate.open(old)
		return time.Since(start), fmt.Errorf("%w within %s", ErrBusy, requestDrain)
	}
	if err := old.halt(deliveryGrace); err != nil {
		s.log.Error("the old config's background work stopped with an error", zap.Error(err))
	}
	next.start(s.fatal)
	s.gate.open(next)
	return time.Since(start), nil
}

// Current is the Orchestrator serving now: O until a reload replaces it.
func (s *Server) Current() *Orchestrator { return s.gate.current().o }
