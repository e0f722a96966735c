package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestReadStatus(t *testing.T) {
	_, a, b, n := start2(t, short)
	db := a.m.db
	ctx := context.Background()
	want := split(n, "a", "b")
	st, err := ReadStatus(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Shards != n || st.Held != n || st.Unheld != 0 || st.Orphaned != 0 || st.ReplicasLive != 2 || st.ReplicasGone != 0 {
		t.Errorf("status %d shards, %d held, %d unheld, %d orphaned, %d live, %d gone; want %d held by 2 live replicas",
			st.Shards, st.Held, st.Unheld, st.Orphaned, st.ReplicasLive, st.ReplicasGone, n)
	}
	if len(st.Replicas) != 2 {
		t.Fatalf("replicas %+v, want a and b", st.Replicas)
	}
	for i, r := range []*replica{a, b} {
		got := st.Replicas[i]
		if got.ID != r.m.ID() || got.Name != r.name || got.Addr != "http://"+r.name+":7071" || !got.Live || got.ExpiresAt.IsZero() ||
			!slices.Equal(got.Shards, want[r.name]) || got.ShardCount != len(want[r.name]) {
			t.Errorf("replica %d: %+v, want %s live with shards %v", i, got, r.m.ID(), want[r.name])
		}
	}
	if len(st.Leases) != n {
		t.Fatalf("%d leases listed, want %d", len(st.Leases), n)
	}
	for s, l := range st.Leases {
		if l.Shard != s || !l.Held || NameOf(l.Owner) != assign([]string{"a", "b"}, n)[s] || l.Epoch < 1 {
			t.Errorf("lease %+v, want shard %d held", l, s)
		}
	}

	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"shards":256`, `"replicas_live":2`, `"shard_count":`, `"expires_at":`, `"unheld":0`, `"leases":[{"shard":0,`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("the status's JSON has no %s: %.300s", key, raw)
		}
	}

	// b stops without a hand-off, a hands off: b's shards are orphaned
	// (held by a replica gone) until they run out, a's are free, and a
	// is left out, gone.
	b.stop()
	a.stop()
	if err := a.m.Handoff(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = ReadStatus(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unheld != len(want["a"]) || st.Held != len(want["b"]) || st.ReplicasGone != 1 || len(st.Replicas) != 1 || st.Replicas[0].ID != b.m.ID() {
		t.Errorf("after a's hand-off: %d unheld, %d held, %d gone, replicas %+v; want a's %d free and b still listed",
			st.Unheld, st.Held, st.ReplicasGone, st.Replicas, len(want["a"]))
	}
	// b's heartbeat and its leases run out a TTL after their last
	// renewals: its shards are orphaned only once it is not live.
	t.Logf("b live %v, orphaned %d", st.Replicas[0].Live, st.Orphaned)
	if st.Replicas[0].Live && st.Orphaned != 0 || !st.Replicas[0].Live && st.Orphaned != len(want["b"]) {
		t.Errorf("b live %v with %d orphaned shards", st.Replicas[0].Live, st.Orphaned)
	}
}
