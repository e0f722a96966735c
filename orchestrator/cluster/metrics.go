package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// series are the member's Prometheus series.
type series struct {
	owned    prometheus.Gauge
	lost     prometheus.Counter
	acquired prometheus.Counter
	released prometheus.Counter
	live     prometheus.Gauge
}

func newSeries(reg prometheus.Registerer) (*series, error) {
	moves := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_cluster_shard_moves_total",
		Help: "Shard leases this replica acquired or released (handed off), by direction."}, []string{"direction"})
	s := &series{
		owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "baton_cluster_shards_owned",
			Help: "Shards whose leases this replica holds live now."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_cluster_leases_lost_total",
			Help: "Shard leases this replica lost: a renewal refused, or its local deadline passed first."}),
		acquired: moves.WithLabelValues("acquired"),
		released: moves.WithLabelValues("released"),
		live: prometheus.NewGauge(prometheus.GaugeOpts{Name: "baton_cluster_replicas_live",
			Help: "Replicas whose heartbeat was live at this replica's last read of the cluster."}),
	}
	for _, c := range []prometheus.Collector{s.owned, s.lost, moves, s.live} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cluster: register the series: %w", err)
		}
	}
	return s, nil
}

// The methods take a nil *series (no Registerer) as a no-op.

func (s *series) setOwned(n int) {
	if s != nil {
		s.owned.Set(float64(n))
	}
}

func (s *series) addLost(n int) {
	if s != nil {
		s.lost.Add(float64(n))
	}
}

func (s *series) addMoves(acquired, released int) {
	if s != nil {
		s.acquired.Add(float64(acquired))
		s.released.Add(float64(released))
	}
}

func (s *series) setLive(n int) {
	if s != nil {
		s.live.Set(float64(n))
	}
}

// failures logs one repeated operation's failures without flooding: the
// first, then only when the error changes or a minute on (with how many
// failed meanwhile), and the recovery once. Each loop owns its own, so
// it needs no lock.
type failures struct {
	log  *zap.Logger
	what string // "heartbeat failed", ...
	last string
	n    int
	at   time.Time
}

const failureRepeat = time.Minute

func (f *failures) fail(err error) {
	f.n++
	now := time.Now()
	if msg := err.Error(); msg != f.last || now.Sub(f.at) >= failureRepeat {
		f.log.Warn(f.what, zap.Error(err), zap.Int("failures", f.n))
		f.last, f.at = msg, now
	}
}

func (f *failures) ok() {
	if f.n > 0 {
		f.log.Info(f.what+": recovered", zap.Int("failures", f.n))
	}
	f.n, f.last = 0, ""
}

// Ranges is shards (ascending) as ranges, "0-3,7,9-12", for the logs: a
// list of 256 numbers would bury the line.
func Ranges(shards []int) string {
	var b strings.Builder
	for i := 0; i < len(shards); {
		j := i
		for j+1 < len(shards) && shards[j+1] == shards[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(shards[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(shards[j]))
		}
		i = j + 1
	}
	return b.String()
}
