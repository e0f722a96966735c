package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/cluster"
	"github.com/batonhq/baton/orchestrator/forward"
	"github.com/batonhq/baton/orchestrator/graphapi"
	"github.com/batonhq/baton/orchestrator/ingress"
	"github.com/batonhq/baton/store"
)

// One replica of several (config cluster:). The replica's Orchestrator
// acts for the shards its cluster.Member holds leases on: its store is
// that scope of the shared one. When the set changes (a replica joined,
// left or died; a lease was lost), the Server builds an Orchestrator on
// the new scope and swaps to it as a reload does, so that the old one's
// dispatcher, timers and rule jobs have stopped before the new one's
// start, and before a shard given up is released to its next owner.
// What reaches a replica for a thread it does not own is forwarded to
// the owner (orchestrator/forward); webhooks are accepted by any replica
// into the inbound queue, which the owner routes (ingress.Cluster).

// ClusterStore is a store several replicas share: store/postgres.DB.
type ClusterStore interface {
	store.Sharded
	store.Inbound
	cluster.DB
	// Scoped is the view of one replica's scope: writes fenced by its
	// leases, its own work's scans limited to its shards.
	Scoped(sc store.Scope) store.Store
	// Acceptor is the store webhooks are accepted through, in a group
	// commit of its own: an acknowledgement does not wait behind routing.
	Acceptor() store.Store
}

// replicaCluster is what a Server keeps when it is one replica of several.
type replicaCluster struct {
	db      ClusterStore
	member  *cluster.Member
	fwd     *forward.Forwarder
	scope   store.Scope  // the current generation's
	listen  string       // cluster.internal_listen
	l       net.Listener // ServerOptions.Internal, or nil: Run listens on listen
	started time.Time
}

// forwardMaxBody is the largest request replayed on a thread's owner:
// /graph's uploads (25 MB, graphapi) included, so that a send with an
// attachment that reached another replica is not refused. The handler
// reads such a body whole anyway; the copy kept grows with what arrived.
const forwardMaxBody = 26 << 20

// noShards is the scope of a replica that holds no lease yet: it accepts
// webhooks into the queue and forwards every thread's call.
type noShards struct{}

func (noShards) Shards() []int         { return nil }
func (noShards) Leases() []store.Lease { return nil }
func (noShards) Owns(int) bool         { return false }

// newReplicaCluster makes the member and the forwarder of cfg.Cluster on
// st, which must be a ClusterStore.
func (s *Server) newReplicaCluster(cfg *config.Config, st store.Store) (*replicaCluster, error) {
	c := cfg.Cluster
	db, ok := st.(ClusterStore)
	if !ok {
		return nil, errors.New("cluster: the store is not one replicas can share: set store.postgres")
	}
	terms := store.LeaseTerms{TTL: c.LeaseTTL, Margin: c.LeaseMargin}
	m, err := cluster.New(db, cluster.Options{Name: c.Name, Addr: c.Advertise, Terms: terms, Log: s.log.Named("cluster"), Registerer: s.m.Registry})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// The forwarder's own client: no environment proxy between replicas
	// (a bot's token and the admin's travel in these requests), a short
	// dial, no redirects.
	fwd, err := forward.New(forward.Options{Self: m.ID(), Secret: []byte(c.Secret.Reveal()), Owners: m, MaxBody: forwardMaxBody,
		Log: s.log.Named("forward"), Registerer: s.m.Registry, Unavailable: func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/graph/") { // a bot on a Messenger SDK reads Meta's shape
				graphapi.WriteUnavailable(w, r)
				return
			}
			forward.WriteUnavailable(w, r)
		}})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return &replicaCluster{db: db, member: m, fwd: fwd, scope: noShards{}, listen: c.InternalListen, started: time.Now()}, nil
}

// deps are the Orchestrator's Deps of the current scope.
func (rc *replicaCluster) deps() (store.Store, *Cluster) {
	status := func(ctx context.Context) (any, error) { return cluster.ReadStatus(ctx, rc.db) }
	return rc.db.Scoped(rc.scope), &Cluster{Cluster: ingress.Cluster{Shared: rc.db, Accept: rc.db.Acceptor(), Inbound: rc.db, Scope: rc.scope, ShardOf: rc.db.ShardOf},
		Status: status, Remote: rc.fwd.Send}
}

// rescope swaps to an Orchestrator on sc: the member calls it whenever
// the shards it holds change, and releases what it gave up only once it
// returns. A swap that cannot drain the requests in flight is tried
// again: the old Orchestrator is safe meanwhile (its lost leases fence
// its writes and stop its calls), only slower to start what it gained.
func (s *Server) rescope(ctx context.Context, sc store.Scope) {
	for attempt := 1; ; attempt++ {
		err := s.tryRescope(sc)
		if err == nil || ctx.Err() != nil || errors.Is(err, errStopping) {
			return
		}
		wait := time.Duration(min(attempt, 10)) * 100 * time.Millisecond
		s.log.Warn("the new shard set is not applied yet; trying again", zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *Server) tryRescope(sc store.Scope) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if !s.running {
		// Stopping (the member's apply comes only while running): the
		// running generation stays until it halts, on its scope.
		return errStopping
	}
	old := s.gate.current()
	prev := s.cluster.scope
	s.cluster.scope = sc
	next, err := s.build(old.cfg)
	if err != nil {
		s.cluster.scope = prev
		return err
	}
	pause, err := s.swap(old, next)
	if err != nil {
		s.cluster.scope = prev
		next.client.CloseIdleConnections()
		return err
	}
	s.log.Info("shards applied", zap.Int("shards", len(sc.Shards())), zap.Duration("pause", pause))
	return nil
}

// runCluster starts the member and the internal listener the other
// replicas forward to, and returns that listener's server (shut down with
// the others) and the member's stop (after the handoff); a listener that
// fails is reported on errc.
func (s *Server) runCluster(ctx context.Context, errc chan<- error) (internal *http.Server, stop func(), err error) {
	rc := s.cluster
	l := rc.l
	if l == nil {
		if l, err = net.Listen("tcp", rc.listen); err != nil {
			return nil, nil, fmt.Errorf("cluster.internal_listen %s: %w", rc.listen, err)
		}
	}
	pub, adm := s.gate.handler(publicSide), s.gate.handler(adminSide)
	internal = &http.Server{Handler: rc.fwd.Internal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAdminPath(r.URL.Path) {
			adm.ServeHTTP(w, r)
			return
		}
		pub.ServeHTTP(w, r)
	})), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: readTimeout(s.cfg.Webhooks.MaxBody), IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
	go func() { errc <- serve(internal, l) }()
	// The member outlives the server's context: its leases are renewed
	// through the drain, until the handoff releases them.
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- rc.member.Run(mctx, func(sc cluster.Scope) { s.rescope(mctx, sc) }) }()
	s.log.Info("cluster member running", zap.String("replica", rc.member.ID()), zap.String("internal", l.Addr().String()))
	return internal, func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("cluster member stopped with an error", zap.Error(err))
		}
	}, nil
}

// wrap forwards what h answers 421 to the thread's owner. Webhooks are
// not wrapped: any replica accepts them, and a copy of each body kept for
// a replay that never comes would cost every one of them.
func (rc *replicaCluster) wrap(h http.Handler) http.Handler {
	fwd := rc.fwd.Wrap(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/webhooks/") {
			h.ServeHTTP(w, r)
			return
		}
		fwd.ServeHTTP(w, r)
	})
}

// errStopping is a shard set that came while the server stops: the
// running generation keeps its scope until it halts, and the handoff
// releases every lease after.
var errStopping = errors.New("the server is stopping")

// handoff gives the shards up at once, once the Orchestrator stopped: the
// other replicas need not wait for the leases to run out.
func (s *Server) handoff() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.cluster.member.Handoff(ctx); err != nil {
		s.log.Warn("shards not handed off; the other replicas take them when the leases run out", zap.Error(err))
		return
	}
	s.log.Info("shards handed off")
}

// isAdminPath says which listener a forwarded request was made on.
func isAdminPath(p string) bool {
	return strings.HasPrefix(p, "/admin/") || strings.HasPrefix(p, "/console/") || p == "/metrics"
}
