// Package cluster is a Baton replica's membership among the replicas that
// share one sharded store (SCALEOUT.md §6.1, §6.9): its heartbeat, the
// shards it should hold (rendezvous hashing over the live replicas'
// names), the leases it takes, renews, hands back on a join or at
// SIGTERM, and loses; and the Scope it tells the replica to act for, a
// new one at each change of set.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/batonhq/baton/store"
)

// Reader reads what the database says of the cluster: every shard's
// lease and every replica's heartbeat.
type Reader interface {
	Leases(ctx context.Context) ([]store.ShardLease, error)
	Replicas(ctx context.Context) ([]store.Replica, error)
}

// DB is what a Member needs of the sharded store (store/postgres).
type DB interface {
	Reader
	Shards() int
	Acquire(ctx context.Context, replica string, shard int, terms store.LeaseTerms) (store.Lease, error)
	// RenewMany renews leases in one statement: those still their
	// shard's come back in renewed, with their new local deadlines, the
	// others in lost.
	RenewMany(ctx context.Context, leases []store.Lease, terms store.LeaseTerms) (renewed, lost []store.Lease, err error)
	Release(ctx context.Context, l store.Lease) error
	Heartbeat(ctx context.Context, replica, addr string, ttl time.Duration) error
	// Leave ends replica's heartbeat now, so that the others count it
	// gone at their next read, not after its TTL.
	Leave(ctx context.Context, replica string) error
}

// Options configure a Member.
type Options struct {
	// Name is the replica's configured name, stable across restarts: the
	// key shards are assigned by, so that a restarted replica is given
	// back its shards.
	Name string
	// Addr is where the other replicas reach this one's internal
	// listener, for the calls they forward to it.
	Addr string
	// Terms are the leases' TTL and margin; the heartbeat lasts a TTL too.
	Terms store.LeaseTerms
	// Tick is how often the member renews, reads the cluster and moves
	// shards (default: the lesser of 1 s and TTL/4). A dead replica's
	// shards are taken within TTL plus about a tick.
	Tick time.Duration
	Log  *zap.Logger
	// Registerer, when set, gets the member's series.
	Registerer prometheus.Registerer
}

// nonceLen is the length of an id's boot nonce, in hex digits.
const nonceLen = 16

// Member is one replica's membership: New makes it, Run keeps it,
// Handoff ends it.
type Member struct {
	db    DB
	opt   Options
	id    string
	log   *zap.Logger
	met   *series
	ready chan struct{}

	// firstBeat is closed by the heartbeat loop once the first heartbeat
	// is in, so that the first round reads a cluster that can see us.
	firstBeat chan struct{}
	lost      chan struct{} // the renewal loop found a lease lost
	onRound   func()        // tests: called after each round

	mu      sync.Mutex
	held    map[int]*cell // leases held, live or not yet dropped
	applied Scope         // the scope last applied
	view    []store.ShardLease
	// rereadMu and rereadAt pace Owner's fresh reads (reread).
	rereadMu sync.Mutex
	rereadAt time.Time
	addrs    map[string]string // replica id -> addr, by the last read
	live     map[string]bool   // live replica ids, by the last read
	started  bool              // Run was called
	leaving  bool              // Handoff was called: Run stops, and may not start
	stop     context.CancelFunc
	done     chan struct{} // closed when Run returns
}

// New makes the member of the replica named opt.Name; it does nothing
// until Run.
func New(db DB, opt Options) (*Member, error) {
	if err := checkName(opt.Name); err != nil {
		return nil, err
	}
	if err := opt.Terms.Check(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if opt.Tick == 0 {
		opt.Tick = min(time.Second, opt.Terms.TTL/4)
	}
	// A renewal must be able to come in before the local deadline, which
	// a tick as long as the lease's local life would miss.
	if window := opt.Terms.TTL - opt.Terms.Margin; opt.Tick <= 0 || opt.Tick >= window {
		return nil, fmt.Errorf("cluster: tick %v: want more than 0 and less than the lease's TTL less its margin (%v)", opt.Tick, window)
	}
	if db.Shards() <= 0 {
		return nil, fmt.Errorf("cluster: the store has %d shards", db.Shards())
	}
	if opt.Log == nil {
		opt.Log = zap.NewNop()
	}
	var nonce [nonceLen / 2]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("cluster: boot nonce: %w", err)
	}
	m := &Member{
		db: db, opt: opt,
		id:        opt.Name + "-" + hex.EncodeToString(nonce[:]),
		ready:     make(chan struct{}),
		firstBeat: make(chan struct{}),
		lost:      make(chan struct{}, 1),
		held:      map[int]*cell{},
		done:      make(chan struct{}),
	}
	m.log = opt.Log.Named("cluster").With(zap.String("replica", m.id))
	if opt.Registerer != nil {
		met, err := newSeries(opt.Registerer)
		if err != nil {
			return nil, err
		}
		m.met = met
	}
	return m, nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("cluster: a replica needs a name")
	}
	if len(name) > 100 {
		return fmt.Errorf("cluster: replica name %.20q...: want at most 100 bytes", name)
	}
	if strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("cluster: replica name %q: no spaces or control characters", name)
	}
	return nil
}

// ID is the member's replica id, Name-nonce: the owner its leases carry.
// The nonce is new at every start, so a restarted replica is a new owner
// and its leases new epochs.
func (m *Member) ID() string { return m.id }

// NameOf is the configured name in replica id id: what precedes its boot
// nonce, or the whole id when it has none (a replica of another kind).
func NameOf(id string) string {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 || len(id)-i-1 != nonceLen {
		return id
	}
	for _, r := range id[i+1:] {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return id
		}
	}
	return id[:i]
}

// Ready is closed once Run's first round is done: the heartbeat is in and
// the shards free to take were taken (and applied).
func (m *Member) Ready() <-chan struct{} { return m.ready }

// Owner is the replica that held shard by the last read of the cluster
// (every tick), with its address, for a call to forward there; this
// replica itself by its own leases, which are fresher. ok is false when
// no live lease on shard is known, or its owner's address is not.
func (m *Member) Owner(shard int) (id, addr string, ok bool) {
	if id, addr, ok = m.owner(shard); ok {
		return id, addr, ok
	}
	// The read may be a tick old: a shard just taken by another replica
	// is not in it yet. One fresh read, shared by the calls that missed.
	m.reread()
	return m.owner(shard)
}

func (m *Member) owner(shard int) (id, addr string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.held[shard]; c != nil {
		if _, live := c.live(time.Now()); live {
			return m.id, m.opt.Addr, true
		}
	}
	if shard < 0 || shard >= len(m.view) {
		return "", "", false
	}
	row := m.view[shard]
	if !row.Held || row.Owner == m.id {
		return "", "", false // ours by the read, but not any more
	}
	addr, ok = m.addrs[row.Owner]
	if !ok || addr == "" {
		return "", "", false
	}
	return row.Owner, addr, true
}

// rereadEvery bounds the reads that Owner's misses make: a flood of
// calls for a shard nobody holds reads the leases this often at most.
const rereadEvery = 100 * time.Millisecond

// reread reads the leases and the replicas' addresses again for Owner,
// unless a read finished less than rereadEvery ago.
func (m *Member) reread() {
	m.rereadMu.Lock()
	defer m.rereadMu.Unlock()
	if time.Since(m.rereadAt) < rereadEvery {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	reps, err := m.db.Replicas(ctx)
	var rows []store.ShardLease
	if err == nil {
		rows, err = m.db.Leases(ctx)
	}
	m.rereadAt = time.Now()
	if err != nil {
		return // the caller answers that the owner is not known; the next tick reads again
	}
	addrs := make(map[string]string, len(reps))
	for _, r := range reps {
		addrs[r.ID] = r.Addr
	}
	view := make([]store.ShardLease, m.db.Shards())
	for _, r := range rows {
		if r.Shard >= 0 && r.Shard < len(view) {
			view[r.Shard] = r
		}
	}
	m.mu.Lock()
	m.addrs, m.view = addrs, view
	m.mu.Unlock()
}

// Held is the shards whose leases the member holds live now, ascending.
func (m *Member) Held() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.liveShards(time.Now())
}

func (m *Member) liveShards(now time.Time) []int {
	var out []int
	for s, c := range m.held {
		if _, ok := c.live(now); ok {
			out = append(out, s)
		}
	}
	sort.Ints(out)
	return out
}

// errStopped is Run's answer once Handoff ended the membership.
var errStopped = errors.New("cluster: the member handed off its shards and left")
