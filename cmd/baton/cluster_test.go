package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/orchestrator/cluster"
)

func TestClusterStatus(t *testing.T) {
	now := time.Now()
	st := cluster.Status{Shards: 4, Held: 3, Unheld: 1, ReplicasLive: 2, ReplicasGone: 1,
		Replicas: []cluster.ReplicaStatus{
			{ID: "r1-0123456789abcdef", Name: "r1", Addr: "http://10.0.0.1:8090", Live: true, ExpiresAt: now.Add(5 * time.Second), Shards: []int{0, 1}, ShardCount: 2},
			{ID: "r2-0123456789abcdef", Name: "r2", Addr: "http://10.0.0.2:8090", Live: true, ExpiresAt: now.Add(4 * time.Second), Shards: []int{3}, ShardCount: 1},
		},
		Leases: []cluster.ShardStatus{
			{Shard: 0, Owner: "r1-0123456789abcdef", Epoch: 3, Held: true, ExpiresAt: now.Add(8 * time.Second)},
			{Shard: 1, Owner: "r1-0123456789abcdef", Epoch: 2, Held: true, ExpiresAt: now.Add(8 * time.Second)},
			{Shard: 2, Owner: "r9-0123456789abcdef", Epoch: 7, ExpiresAt: now.Add(-2 * time.Second)},
			{Shard: 3, Owner: "r2-0123456789abcdef", Epoch: 1, Held: true, ExpiresAt: now.Add(9 * time.Second)},
		}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/cluster" || r.Header.Get("Authorization") != "Bearer admin-token-0123456789" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	t.Setenv("BATON_ADMIN_TOKEN", "admin-token-0123456789")
	var out, errs bytes.Buffer
	if err := runCluster(context.Background(), []string{"status", "-admin", srv.URL, "-shards"}, &out, &errs); err != nil {
		t.Fatal(err, errs.String())
	}
	for _, want := range []string{
		"shards 4: 3 held, 1 unheld",
		"replicas: 2 live, 1 gone",
		"r1  ", "http://10.0.0.2:8090",
		"unheld shards (their threads wait for an owner): 2\n",
		"2      r9-0123456789abcdef  7      false",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := runCluster(context.Background(), []string{"status", "-admin", srv.URL, "-json"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	var back cluster.Status
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Held != 3 || len(back.Leases) != 4 {
		t.Fatalf("-json: %v %+v", err, back)
	}
	t.Setenv("BATON_ADMIN_TOKEN", "wrong-token-0123456789")
	if err := runCluster(context.Background(), []string{"status", "-admin", srv.URL}, &out, &errs); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong token: %v", err)
	}
	if err := runCluster(context.Background(), []string{"state"}, &out, &errs); err == nil {
		t.Fatal("an unknown subcommand was taken")
	}
}
