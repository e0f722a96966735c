package cluster

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Status is the cluster as the database has it, for /admin/cluster and
// `baton cluster status`: every live replica, and every other one that a
// held lease still names (dead, its lease not yet run out); every shard.
// Times are the database's clock.
type Status struct {
	Shards int `json:"shards"`
	// Held and Unheld count the shards whose leases had not, and had, run
	// out; Orphaned, the held ones whose owner's heartbeat had.
	Held     int `json:"held"`
	Unheld   int `json:"unheld"`
	Orphaned int `json:"orphaned"`
	// ReplicasLive counts the live replicas; ReplicasGone, the replicas
	// of the past (earlier boots) left out of Replicas.
	ReplicasLive int             `json:"replicas_live"`
	ReplicasGone int             `json:"replicas_gone"`
	Replicas     []ReplicaStatus `json:"replicas"`
	Leases       []ShardStatus   `json:"leases"`
}

// ReplicaStatus is one replica's heartbeat and the shards it holds.
type ReplicaStatus struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Addr      string    `json:"addr"`
	Live      bool      `json:"live"`
	ExpiresAt time.Time `json:"expires_at"`
	// Shards are the shards whose leases it held, ascending.
	Shards     []int `json:"shards"`
	ShardCount int   `json:"shard_count"`
}

// ShardStatus is one shard's lease.
type ShardStatus struct {
	Shard     int       `json:"shard"`
	Owner     string    `json:"owner"` // the last holder; "" if none ever
	Epoch     int64     `json:"epoch"`
	ExpiresAt time.Time `json:"expires_at"`
	Held      bool      `json:"held"`
}

// ReadStatus reads the cluster's status from db.
func ReadStatus(ctx context.Context, db Reader) (Status, error) {
	reps, err := db.Replicas(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("cluster: status: %w", err)
	}
	rows, err := db.Leases(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("cluster: status: %w", err)
	}
	st := Status{Shards: len(rows), Leases: make([]ShardStatus, 0, len(rows)), Replicas: []ReplicaStatus{}}
	holds := map[string][]int{}
	for _, r := range rows {
		st.Leases = append(st.Leases, ShardStatus{Shard: r.Shard, Owner: r.Owner, Epoch: r.Epoch, ExpiresAt: r.ExpiresAt, Held: r.Held})
		if r.Held {
			st.Held++
			holds[r.Owner] = append(holds[r.Owner], r.Shard)
		} else {
			st.Unheld++
		}
	}
	sort.Slice(st.Leases, func(i, j int) bool { return st.Leases[i].Shard < st.Leases[j].Shard })
	live := map[string]bool{}
	for _, r := range reps {
		shards := holds[r.ID]
		if !r.Live && len(shards) == 0 {
			st.ReplicasGone++
			continue
		}
		if r.Live {
			st.ReplicasLive++
			live[r.ID] = true
		}
		sort.Ints(shards)
		if shards == nil {
			shards = []int{}
		}
		st.Replicas = append(st.Replicas, ReplicaStatus{ID: r.ID, Name: NameOf(r.ID), Addr: r.Addr, Live: r.Live, ExpiresAt: r.ExpiresAt,
			Shards: shards, ShardCount: len(shards)})
	}
	sort.Slice(st.Replicas, func(i, j int) bool { return st.Replicas[i].ID < st.Replicas[j].ID })
	for owner, shards := range holds {
		if !live[owner] {
			st.Orphaned += len(shards)
		}
	}
	return st, nil
}
