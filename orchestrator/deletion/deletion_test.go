package deletion

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	pageA     = "100200300400500"
	pageB     = "100200300400501"
	pageOther = "100200300400502" // the support bot is not on it
	supportID = "512345678901234"
	userID    = "9988776655443322"
)

const configYAML = `
admin: {token_env: ADMIN_TOKEN}
graph: {url: "http://127.0.0.1:1"}
apps:
  - name: support-bot
    app_id: "512345678901234"
    secret_env: SUPPORT_SECRET
    verify_token_env: SUPPORT_VERIFY
    adapter: {type: http, url: "http://127.0.0.1:1/support", secret_env: HOOK}
  - name: billing-bot
    app_id: "623456789012345"
    secret_env: BILLING_SECRET
    verify_token_env: BILLING_VERIFY
    adapter: {type: http, url: "http://127.0.0.1:1/billing", secret_env: HOOK}
pages:
  - id: "100200300400500"
    primary: support-bot
    tokens: {support-bot: {token_env: PAGE_TOKEN}}
  - id: "100200300400501"
    primary: support-bot
    tokens: {support-bot: {token_env: PAGE_TOKEN}}
  - id: "100200300400502"
    primary: billing-bot
    tokens: {billing-bot: {token_env: PAGE_TOKEN}}
`

var env = map[string]string{"ADMIN_TOKEN": "admin-secret-0123456789", "SUPPORT_SECRET": "support-app-secret", "SUPPORT_VERIFY": "v",
	"BILLING_SECRET": "billing-app-secret", "BILLING_VERIFY": "v", "PAGE_TOKEN": "PT", "HOOK": "hook-secret"}

// graphFunc is a Graph double: its behaviour is the function.
type graphFunc func(ctx context.Context, method string, cred messenger.Credentials, edge string, q url.Values, payload []byte) (int, []byte, error)

func (g graphFunc) RawBody(ctx context.Context, method string, cred messenger.Credentials, edge string, q url.Values, _ string, payload []byte) (int, []byte, error) {
	return g(ctx, method, cred, edge, q, payload)
}

// adapterFunc is an Adapter double.
type adapterFunc func(ctx context.Context, d *adapters.Delivery) (adapters.Result, error)

func (f adapterFunc) Deliver(ctx context.Context, d *adapters.Delivery) (adapters.Result, error) {
	return f(ctx, d)
}

func mustTopology(t *testing.T) *topology.Topology {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(configYAML), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	none := adapterFunc(func(context.Context, *adapters.Delivery) (adapters.Result, error) {
		return adapters.Result{}, errors.New("no bot here")
	})
	top, err := topology.New(cfg, map[string]adapters.Adapter{"support-bot": none, "billing-bot": none})
	if err != nil {
		t.Fatal(err)
	}
	return top
}

func mustStore(t *testing.T) store.Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "baton.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The user id is erased as a PSID on each page the app is on, and the
// PSIDs Meta's ID Matching API gives for those pages too; a page of
// another app is left alone, and a Graph that does not answer leaves the
// PSID match.
func TestMatch(t *testing.T) {
	top := mustTopology(t)
	app := top.App("support-bot")
	var asked []string
	answer := `{"data":[{"id":"1111","page":{"id":"` + pageA + `","name":"A"}},{"id":"2222","page":{"id":"` + pageOther + `"}},{"id":"x","page":{"id":"` + pageB + `"}}]}`
	for _, tc := range []struct {
		name  string
		graph Graph
		keys  []string
		how   string
	}{
		{"no Graph", nil, []string{pageA + "/" + userID, pageB + "/" + userID}, "the user id as a PSID on 2 page(s)"},
		{"ids_for_pages", graphFunc(func(_ context.Context, method string, cred messenger.Credentials, edge string, _ url.Values, _ []byte) (int, []byte, error) {
			asked = append(asked, fmt.Sprint(method, " ", cred.PageID, "/", edge, " ", cred.AccessToken == supportID+"|support-app-secret", " ", cred.AppSecret != ""))
			return 200, []byte(answer), nil
		}), []string{pageA + "/" + userID, pageB + "/" + userID, pageA + "/1111"}, "the user id as a PSID on 2 page(s); 1 more PSID(s) from ids_for_pages"},
		{"Meta refuses", graphFunc(func(context.Context, string, messenger.Credentials, string, url.Values, []byte) (int, []byte, error) {
			return 400, []byte(`{"error":{"message":"Unsupported get request","type":"GraphMethodException","code":100}}`), nil
		}), []string{pageA + "/" + userID, pageB + "/" + userID}, "the user id as a PSID on 2 page(s); ids_for_pages not answered"},
		{"Meta unreachable", graphFunc(func(context.Context, string, messenger.Credentials, string, url.Values, []byte) (int, []byte, error) {
			return 0, nil, &messenger.TransportError{Op: "GET ids_for_pages", Err: errors.New("connection refused")}
		}), []string{pageA + "/" + userID, pageB + "/" + userID}, "the user id as a PSID on 2 page(s); ids_for_pages not answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Deps{Store: mustStore(t), Topology: top, Graph: tc.graph})
			keys, how := s.match(context.Background(), app, userID)
			var got []string
			for _, k := range keys {
				got = append(got, k.String())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.keys) || how != tc.how {
				t.Errorf("match = %v, %q; want %v, %q", got, how, tc.keys, tc.how)
			}
		})
	}
	if want := "GET " + userID + "/ids_for_pages true true"; len(asked) != 1 || asked[0] != want {
		t.Errorf("asked Meta %q, want %q (the app's token, with appsecret_proof)", asked, want)
	}
}

// A request left pending by the last run is done at start: the person's
// threads erased, the request done with its counts and without the user
// id; one that fails stays pending with its error and is tried again.
func TestRunResumesAndRetries(t *testing.T) {
	top := mustTopology(t)
	db := mustStore(t)
	clk := clock.NewManual(now)
	put := func(tx store.Tx, k store.ThreadKey) error {
		return tx.PutThread(store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Idle}})
	}
	err := db.Update(context.Background(), func(tx store.Tx) error {
		for _, k := range []store.ThreadKey{{Page: pageA, PSID: userID}, {Page: pageB, PSID: userID}, {Page: pageOther, PSID: userID}, {Page: pageA, PSID: "5"}} {
			if err := put(tx, k); err != nil {
				return err
			}
		}
		for _, d := range []store.Deletion{
			{Code: "LEFTOVER", App: "support-bot", UserID: userID, Status: store.DeletionPending, RequestedAt: now},
			{Code: "GONEAPP", App: "no-such-bot", UserID: "5", Status: store.DeletionPending, RequestedAt: now},
		} {
			if err := tx.PutDeletion(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Deps{Store: db, Topology: top, Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	}()
	get := func(code string) store.Deletion {
		var d store.Deletion
		if err := db.View(func(tx store.ReadTx) error { var err error; d, err = tx.Deletion(code); return err }); err != nil {
			t.Fatal(err)
		}
		return d
	}
	deadline := time.Now().Add(10 * time.Second)
	for get("LEFTOVER").Status != store.DeletionDone || get("GONEAPP").Attempts == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not done in 10s: %+v %+v", get("LEFTOVER"), get("GONEAPP"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := get("LEFTOVER")
	if d.UserID != "" || d.Threads != 2 || d.Erased.Threads != 2 || !d.DoneAt.Equal(now) || !strings.Contains(d.Matched, "2 page(s)") {
		t.Errorf("done request %+v", d)
	}
	if g := get("GONEAPP"); g.Status != store.DeletionPending || !strings.Contains(g.LastError, `app "no-such-bot" is no longer in the config`) {
		t.Errorf("failed request %+v", g)
	}
	err = db.View(func(tx store.ReadTx) error {
		for _, k := range []store.ThreadKey{{Page: pageOther, PSID: userID}, {Page: pageA, PSID: "5"}} {
			if _, err := tx.Thread(k); err != nil {
				t.Errorf("%s: %v (not the app's page, or not the person)", k, err)
			}
		}
		if _, err := tx.Thread(store.ThreadKey{Page: pageA, PSID: userID}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the person's thread: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The failed one is tried again once its backoff is over.
	for clk.Advance(time.Second); get("GONEAPP").Attempts < 2; clk.Advance(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("failed request not tried again: %+v", get("GONEAPP"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A request whose run is stopped (a shutdown, a reload) while Meta's ID
// Matching API is asked stays pending as it was, its attempts untouched:
// it is neither a failure nor done with the PSIDs Meta did not get to
// give, and the next run matches again.
func TestStoppedRunLeavesRequestAsItWas(t *testing.T) {
	db := mustStore(t)
	k := store.ThreadKey{Page: pageA, PSID: userID}
	d := store.Deletion{Code: "STOPPED", App: "support-bot", UserID: userID, Status: store.DeletionPending, RequestedAt: now}
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.PutThread(store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Idle}}); err != nil {
			return err
		}
		return tx.PutDeletion(d)
	}); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	graph := graphFunc(func(context.Context, string, messenger.Credentials, string, url.Values, []byte) (int, []byte, error) {
		stop() // the server stops while Meta is asked
		return 0, nil, &messenger.TransportError{Op: "GET ids_for_pages", Err: context.Canceled}
	})
	s := New(Deps{Store: db, Topology: mustTopology(t), Graph: graph, Clock: clock.NewManual(now)})
	if err := s.do(ctx, d); !errors.Is(err, context.Canceled) {
		t.Errorf("do = %v, want context.Canceled", err)
	}
	var got store.Deletion
	if err := db.View(func(tx store.ReadTx) error { var err error; got, err = tx.Deletion(d.Code); return err }); err != nil {
		t.Fatal(err)
	}
	if got != d {
		t.Errorf("request after a stopped run: %+v, want it as it was: %+v", got, d)
	}
}

// One replica of several does the requests (Poll): one another replica
// recorded, which no kick announces here, is done at the next poll.
func TestRunPollsForRequestsRecordedElsewhere(t *testing.T) {
	top := mustTopology(t)
	db := mustStore(t)
	clk := clock.NewManual(now)
	s := New(Deps{Store: db, Topology: top, Clock: clk, Poll: 30 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	}()
	err := db.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.PutThread(store.Thread{ThreadKey: store.ThreadKey{Page: pageA, PSID: userID}, Thread: statemachine.Thread{State: statemachine.Idle}}); err != nil {
			return err
		}
		return tx.PutDeletion(store.Deletion{Code: "ELSEWHERE", App: "support-bot", UserID: userID, Status: store.DeletionPending, RequestedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	status := func() string {
		var d store.Deletion
		if err := db.View(func(tx store.ReadTx) error { var err error; d, err = tx.Deletion("ELSEWHERE"); return err }); err != nil {
			t.Fatal(err)
		}
		return d.Status
	}
	deadline := time.Now().Add(10 * time.Second)
	for status() != store.DeletionDone {
		if time.Now().After(deadline) {
			t.Fatal("the request recorded elsewhere was not done at the poll")
		}
		clk.Advance(30 * time.Second) // the poll's wait, on the service's clock
		time.Sleep(5 * time.Millisecond)
	}
}
