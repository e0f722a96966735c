package people

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type noBot struct{}

func (noBot) Deliver(context.Context, *adapters.Delivery) (adapters.Result, error) {
	return adapters.Result{}, nil
}

type graphFunc func(cred messenger.Credentials, q url.Values) (int, []byte, error)

func (f graphFunc) RawBody(_ context.Context, _ string, cred messenger.Credentials, _ string, q url.Values, _ string, _ []byte) (int, []byte, error) {
	return f(cred, q)
}

const yaml = `
admin: {token_env: T}
apps:
  - {name: bot, app_id: "11", secret_env: S, verify_token_env: V, adapter: {type: http, url: "http://127.0.0.1:1/", secret_env: H}}
pages:
  - {id: "100", mode: conversation_routing, primary: bot, tokens: {bot: {token_env: P}}}
`

// Meta's answer decides what is stored: a name, a person without one
// (a refusal: not asked again), or nothing (Meta not reached: asked
// again at the next message).
func TestLearn(t *testing.T) {
	env := map[string]string{"T": "admin-token-0123456789", "S": "secret", "V": "verify", "H": "hook", "P": "PAGE_TOKEN"}
	cfg, err := config.Parse("t.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	top, err := topology.New(cfg, map[string]adapters.Adapter{"bot": noBot{}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		status int
		body   string
		err    error
		stored bool
		want   string
	}{
		{"a name", 200, `{"id":"7","name":"Ada Lovelace"}`, nil, true, "Ada Lovelace"},
		{"refused", 400, `{"error":{"code":100}}`, nil, true, ""},
		{"Meta down", 503, ``, nil, false, ""},
		{"not reached", 0, ``, errors.New("dial: refused"), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var asked messenger.Credentials
			g := graphFunc(func(cred messenger.Credentials, q url.Values) (int, []byte, error) {
				asked = cred
				if q.Get("fields") != "name" {
					t.Errorf("fields %q", q.Get("fields"))
				}
				return tt.status, []byte(tt.body), tt.err
			})
			l := New(Deps{Store: db, Topology: top, Graph: g, Clock: clock.NewManual(time.Unix(0, 0))})
			k := store.ThreadKey{Page: "100", PSID: "7"}
			said(t, db, k)
			l.learn(context.Background(), k)
			if asked.PageID != "7" || asked.AccessToken != "PAGE_TOKEN" {
				t.Errorf("asked %+v, want the person's node with the page's token", asked)
			}
			var p store.Person
			err = db.View(func(tx store.ReadTx) error { p, err = tx.Person(k); return err })
			if stored := err == nil; stored != tt.stored || p.Name != tt.want {
				t.Errorf("stored %v %+v (%v), want %v %q", stored, p, err, tt.stored, tt.want)
			}
		})
	}
}

// said writes the person's first message, as ingress does before it
// asks for the name.
func said(t *testing.T, db store.Store, k store.ThreadKey) {
	t.Helper()
	err := db.Update(context.Background(), func(tx store.Tx) error {
		return tx.AppendTranscript(k, &store.TranscriptEntry{At: time.Unix(1, 0), Kind: store.TranscriptMessage, From: k.PSID, Text: "hi", RecordedAt: time.Unix(1, 0)})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A person erased while Meta was asked for their name (Meta's deletion
// request came in meanwhile) stays erased: the answer is not stored.
func TestLearnAfterAnEraseStoresNothing(t *testing.T) {
	env := map[string]string{"T": "admin-token-0123456789", "S": "secret", "V": "verify", "H": "hook", "P": "PAGE_TOKEN"}
	cfg, err := config.Parse("t.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	top, err := topology.New(cfg, map[string]adapters.Adapter{"bot": noBot{}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k := store.ThreadKey{Page: "100", PSID: "7"}
	said(t, db, k)
	g := graphFunc(func(messenger.Credentials, url.Values) (int, []byte, error) {
		if _, err := store.Erase(context.Background(), db, k); err != nil {
			t.Error(err)
		}
		return 200, []byte(`{"id":"7","name":"Ada Lovelace"}`), nil
	})
	New(Deps{Store: db, Topology: top, Graph: g, Clock: clock.NewManual(time.Unix(0, 0))}).learn(context.Background(), k)
	err = db.View(func(tx store.ReadTx) error { _, err := tx.Person(k); return err })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the erased person's name: %v, want not found", err)
	}
}

// Learn never blocks and asks once for a person already queued.
func TestLearnQueues(t *testing.T) {
	l := New(Deps{})
	k := store.ThreadKey{Page: "100", PSID: "7"}
	l.Learn(k)
	l.Learn(k)
	if len(l.queue) != 1 {
		t.Fatalf("queued %d, want 1", len(l.queue))
	}
	for i := range queueSize + 10 {
		l.Learn(store.ThreadKey{Page: "100", PSID: fmt.Sprint(1000 + i)})
	}
	if len(l.queue) != queueSize {
		t.Fatalf("queue %d, want it full at %d", len(l.queue), queueSize)
	}
}
