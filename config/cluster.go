package config

import (
	"net"
	"net/url"
	"os"
	"regexp"
	"time"
)

// Cluster makes baton serve one replica of several on the PostgreSQL
// store: the threads are split into shards, each replica acts for the
// shards it holds leases on, and a thread's calls that reach another
// replica are forwarded to its owner over the internal listener. Every
// replica may share one file; its name and address come from flags of
// baton serve, or from the host.
type Cluster struct {
	// Name is this replica's name (default: the host name): shards are
	// spread over the live names, so a replica that restarts under its
	// name gets its shards back. Unique among the replicas.
	Name string `yaml:"name"`
	// InternalListen is where the other replicas forward a thread's calls
	// to this one (default :8090). Not for the public: requests there
	// must carry the cluster secret's signature.
	InternalListen string `yaml:"internal_listen"`
	// Advertise is the URL the other replicas reach InternalListen at
	// (default: http://<host name>:<port of internal_listen>).
	Advertise string `yaml:"advertise"`
	// SecretEnv names the variable with the secret the replicas sign
	// forwarded requests with; the same on every replica, at least 16
	// bytes.
	SecretEnv string `yaml:"secret_env"`
	Secret    Secret `yaml:"-"`
	// LeaseTTL is how long a shard's lease lasts without renewal, by the
	// database's clock (default 10s): a replica that dies loses its
	// shards this long after its last renewal.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// LeaseMargin is how much earlier than the TTL a replica that could
	// not renew stops acting (default 2s), so that it never acts beside
	// the next owner whatever the clocks' drift and the wire's delay.
	LeaseMargin time.Duration `yaml:"lease_margin"`
}

// Cluster defaults.
const (
	DefaultInternalListen = ":8090"
	DefaultLeaseTTL       = 10 * time.Second
	DefaultLeaseMargin    = 2 * time.Second
)

func (c *Cluster) applyDefaults() {
	if c == nil {
		return
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.InternalListen == "" {
		c.InternalListen = DefaultInternalListen
	}
	if c.Advertise == "" {
		c.Advertise = AdvertiseFor(c.InternalListen)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.LeaseMargin == 0 {
		c.LeaseMargin = DefaultLeaseMargin
	}
}

// AdvertiseFor is the default cluster.advertise of an internal_listen
// address: its host when it names one, else the host name; "" when
// listen is not host:port.
func AdvertiseFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host, _ = os.Hostname()
	}
	return "http://" + net.JoinHostPort(host, port)
}

// replicaNameRE is a replica's name: what a host name may be.
var replicaNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (v *validator) cluster(c *Config) {
	cl := c.Cluster
	if cl == nil {
		return
	}
	if c.Store.Postgres == nil {
		v.bad("cluster", "replicas share a PostgreSQL store: set store.postgres (a bbolt file is one process's)")
	}
	v.clusterPlaces(cl)
	v.secret("cluster.secret_env", cl.SecretEnv, true, &cl.Secret)
	if s := cl.Secret.Reveal(); s != "" && len(s) < minTokenLen {
		v.bad("cluster.secret_env", "%s holds %d bytes: want at least %d", cl.SecretEnv, len(s), minTokenLen)
	}
	if cl.LeaseTTL < time.Second || cl.LeaseTTL > 5*time.Minute {
		v.bad("cluster.lease_ttl", "%s: want 1s to 5m (default 10s)", cl.LeaseTTL)
	}
	if cl.LeaseMargin <= 0 || cl.LeaseMargin >= cl.LeaseTTL {
		v.bad("cluster.lease_margin", "%s: want more than 0 and less than lease_ttl (%s)", cl.LeaseMargin, cl.LeaseTTL)
	}
}

// clusterPlaces checks the replica's name and addresses: what may differ
// from one replica to the next.
func (v *validator) clusterPlaces(cl *Cluster) {
	if !replicaNameRE.MatchString(cl.Name) {
		v.bad("cluster.name", "%q: a replica's name is letters, digits, '.', '_' and '-', up to 63 (default: the host name)", cl.Name)
	}
	if _, _, err := net.SplitHostPort(cl.InternalListen); err != nil {
		v.bad("cluster.internal_listen", "%q is not host:port", cl.InternalListen)
	}
	if u, err := url.Parse(cl.Advertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		v.bad("cluster.advertise", "%q is not a URL such as http://baton-1:8090", cl.Advertise)
	}
}

// CheckCluster checks cfg's cluster section again after baton serve's
// flags changed its name and addresses.
func CheckCluster(cfg *Config) error {
	if cfg.Cluster == nil {
		return nil
	}
	v := &validator{file: cfg.Path, lines: fieldLines{}}
	v.clusterPlaces(cfg.Cluster)
	if len(v.errs) > 0 {
		return v.errs
	}
	return nil
}
