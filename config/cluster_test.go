package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestClusterConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "bad_store_empty.yml"))
	if err != nil {
		t.Fatal(err)
	}
	pg := "store: {postgres: {dsn_env: BATON_PG_DSN}}"
	env := func(name string) (string, bool) {
		switch name {
		case "BATON_PG_DSN":
			return "postgres://baton:s3cr3t@db/baton", true
		case "CLUSTER_SECRET":
			return "cluster-s3cr3t-0123456789", true
		case "SHORT_SECRET":
			return "s3cr3t", true
		}
		return lookup(name)
	}
	cases := []struct {
		name, store, cluster string
		field                string // the problem's field; "" for none
	}{
		{"good", pg, "cluster: {name: baton-1, secret_env: CLUSTER_SECRET}", ""},
		{"bbolt", "", "cluster: {name: baton-1, secret_env: CLUSTER_SECRET}", "cluster"},
		{"no secret", pg, "cluster: {name: baton-1}", "cluster.secret_env"},
		{"short secret", pg, "cluster: {name: baton-1, secret_env: SHORT_SECRET}", "cluster.secret_env"},
		{"bad name", pg, "cluster: {name: 'a b', secret_env: CLUSTER_SECRET}", "cluster.name"},
		{"bad listen", pg, "cluster: {name: b, internal_listen: nowhere, advertise: 'http://b:1', secret_env: CLUSTER_SECRET}", "cluster.internal_listen"},
		{"bad advertise", pg, "cluster: {name: b, advertise: 'b:8090', secret_env: CLUSTER_SECRET}", "cluster.advertise"},
		{"margin over ttl", pg, "cluster: {name: b, lease_ttl: 2s, lease_margin: 3s, secret_env: CLUSTER_SECRET}", "cluster.lease_margin"},
		{"short ttl", pg, "cluster: {name: b, lease_ttl: 100ms, lease_margin: 10ms, secret_env: CLUSTER_SECRET}", "cluster.lease_ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			yml := strings.Replace(string(b), "store: {}", tc.store, 1) + "\n" + tc.cluster + "\n"
			c, err := Parse("cluster.yml", []byte(yml), env)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				cl := c.Cluster
				if cl.InternalListen != DefaultInternalListen || cl.LeaseTTL != DefaultLeaseTTL || cl.LeaseMargin != DefaultLeaseMargin ||
					cl.Secret.Reveal() != "cluster-s3cr3t-0123456789" || !strings.HasSuffix(cl.Advertise, ":8090") {
					t.Fatalf("defaults: %+v", cl)
				}
				return
			}
			var problems Errors
			if !errors.As(err, &problems) {
				t.Fatalf("want problems naming %s, got %v", tc.field, err)
			}
			for _, p := range problems {
				if p.Field == tc.field {
					if p.Line == 0 {
						t.Errorf("%s: no line", p)
					}
					if strings.Contains(p.String(), "s3cr3t") {
						t.Errorf("a secret in %q", p)
					}
					return
				}
			}
			t.Fatalf("no problem names %s: %v", tc.field, err)
		})
	}
}

func TestAdvertiseFor(t *testing.T) {
	host, _ := os.Hostname()
	for in, want := range map[string]string{
		"127.0.0.1:9001": "http://127.0.0.1:9001",
		":8090":          "http://" + host + ":8090",
		"0.0.0.0:8090":   "http://" + host + ":8090",
		"[::1]:9":        "http://[::1]:9",
		"nowhere":        "",
	} {
		if got := AdvertiseFor(in); got != want {
			t.Errorf("AdvertiseFor(%q) = %q, want %q", in, got, want)
		}
	}
	c := &Config{Path: "x.yml", Cluster: &Cluster{Name: "r1", InternalListen: ":1", Advertise: "ftp://x", LeaseTTL: time.Second, LeaseMargin: time.Millisecond}}
	if err := CheckCluster(c); err == nil || !strings.Contains(err.Error(), "cluster.advertise") {
		t.Errorf("CheckCluster: %v", err)
	}
}
