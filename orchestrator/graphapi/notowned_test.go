package graphapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/orchestrator/threads"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// elsewhere is the thread-control service of a replica that holds none
// of the shards: every call on a thread is another replica's.
type elsewhere struct{}

func (elsewhere) notOwned(k store.ThreadKey) error { return &store.NotOwnedError{Key: k, Shard: 9} }

func (e elsewhere) Control(_ context.Context, req threads.Request) (store.Thread, error) {
	return store.Thread{}, e.notOwned(store.ThreadKey{Page: req.Page, PSID: req.PSID})
}

func (e elsewhere) Current(_ *topology.Page, k store.ThreadKey) (store.Thread, error) {
	return store.Thread{}, e.notOwned(k)
}

func (e elsewhere) Reconcile(_ context.Context, k store.ThreadKey, _ string) error {
	return e.notOwned(k)
}
func (elsewhere) ReconcileLater(store.ThreadKey, string) {}

// Thread control and sends on a thread another replica holds are 421
// with the shard named, in Meta's error shape, before anything reaches
// Meta (the endpoint has no Graph client: a call to it would panic).
func TestNotOwnedIsMisdirected(t *testing.T) {
	g := mustEndpoint(t)
	g.d.Threads, g.d.Clock = elsewhere{}, clock.System{}
	r := mux.NewRouter()
	g.Register(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, c := range []struct{ name, path, body string }{
		{"pass_thread_control", "/graph/v19.0/me/pass_thread_control", `{"recipient":{"id":"1234"},"target_app_id":"512345678901234"}`},
		{"take_thread_control", "/graph/me/take_thread_control", `{"recipient":{"id":"1234"}}`},
		{"a send", "/graph/v19.0/me/messages", `{"recipient":{"id":"1234"},"message":{"text":"hi"}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+c.path+"?access_token="+testAPIToken, "application/json", strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env messenger.ErrorEnvelope
			if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Error == nil {
				t.Fatalf("body: %v %+v", err, env)
			}
			if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get(apierr.ShardHeader) != "9" {
				t.Fatalf("%d %s=%q, want 421 and shard 9", resp.StatusCode, apierr.ShardHeader, resp.Header.Get(apierr.ShardHeader))
			}
			if env.Error.Code != messenger.CodeService || !env.Error.IsTransient || !strings.HasPrefix(env.Error.FBTraceID, "baton_") {
				t.Fatalf("error %+v, want Meta's transient service error", env.Error)
			}
		})
	}
}
