package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/groupcommit"
)

func appendInbound(t *testing.T, s store.Store, es ...*store.InboundEntry) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx store.Tx) error {
		for _, e := range es {
			if err := tx.(store.InboundTx).AppendInbound(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func seqs(es []store.InboundEntry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

// Entries are appended by any replica, listed by shard in Seq order,
// deleted once; a fenced delete keeps to the leases' shards.
func TestInbound(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	at := time.Unix(1700000000, 123456789).UTC()
	entry := func(s int, psid string) *store.InboundEntry {
		k := keyIn2(a, "300", s)
		if psid == "" {
			k.PSID = ""
		}
		return &store.InboundEntry{Shard: s, App: "bot", Page: k.Page, PSID: k.PSID, Channel: "standby", ReceivedAt: at,
			Event: []byte(fmt.Sprintf(`{"shard":%d,"nul":"\u0000"}`, s))}
	}
	e1, e2, e3, e4 := entry(1, "x"), entry(2, "x"), entry(1, ""), entry(3, "x")
	appendInbound(t, a, e1, e2)
	appendInbound(t, b, e3, e4) // another replica, no lease needed
	if !(e1.Seq < e2.Seq && e2.Seq < e3.Seq && e3.Seq < e4.Seq) {
		t.Fatalf("seqs %d %d %d %d: want them growing", e1.Seq, e2.Seq, e3.Seq, e4.Seq)
	}
	for _, tt := range []struct {
		shards []int
		limit  int
		want   []uint64
	}{
		{[]int{1}, 0, []uint64{e1.Seq, e3.Seq}},
		{[]int{3, 1}, 0, []uint64{e1.Seq, e3.Seq, e4.Seq}},
		{[]int{1, 2, 3}, 2, []uint64{e1.Seq, e2.Seq}},
		{[]int{4}, 0, nil},
		{nil, 0, nil},
	} {
		got, err := b.PendingInbound(ctx, tt.shards, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(seqs(got)) != fmt.Sprint(tt.want) {
			t.Errorf("pending of %v, at most %d: %v, want %v", tt.shards, tt.limit, seqs(got), tt.want)
		}
	}
	got, err := a.PendingInbound(ctx, []int{1}, 1)
	if err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	if g := got[0]; g.Shard != 1 || g.App != "bot" || g.Page != e1.Page || g.PSID != e1.PSID || g.Channel != "standby" ||
		!g.ReceivedAt.Equal(at) || string(g.Event) != string(e1.Event) {
		t.Errorf("entry read back %+v, want %+v", g, *e1)
	}

	// Bad entries are refused.
	for _, e := range []*store.InboundEntry{
		{Shard: 256, App: "bot", Page: "1", Channel: "messaging", Event: []byte(`{}`)},
		{Shard: (a.ShardOf(store.ThreadKey{Page: "1", PSID: "2"}) + 1) % 256, App: "bot", Page: "1", PSID: "2", Event: []byte(`{}`)},
	} {
		err := a.Update(ctx, func(tx store.Tx) error { return tx.(store.InboundTx).AppendInbound(e) })
		if err == nil {
			t.Errorf("entry %+v appended", e)
		}
		t.Log(err)
	}

	// A scope holding shard 1 deletes its entries, not shard 2's; an entry
	// deleted is not found again.
	l, err := a.Acquire(ctx, "a", 1, store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sc := a.Scoped(testScope{l})
	del := func(e *store.InboundEntry) error {
		return sc.Update(ctx, func(tx store.Tx) error { return tx.(store.InboundTx).DeleteInbound(*e) })
	}
	if err := del(e1); err != nil {
		t.Fatal(err)
	}
	if err := del(e1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a second delete: %v, want ErrNotFound", err)
	}
	wantNotOwned(t, del(e2), store.ThreadKey{Page: e2.Page, PSID: e2.PSID}, 2)
	// An entry said to be of a shard held, that is not its row's, stays:
	// the delete is of the row of that seq and that shard.
	if err := del(&store.InboundEntry{Seq: e2.Seq, Shard: 1, Page: e1.Page, PSID: e1.PSID}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a delete of shard 2's entry as shard 1's: %v, want ErrNotFound", err)
	}
	if err := del(e3); err != nil { // a page-level entry of shard 1
		t.Fatal(err)
	}
	got, err = a.PendingInbound(ctx, []int{1, 2, 3}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs(got)) != fmt.Sprint([]uint64{e2.Seq, e4.Seq}) {
		t.Errorf("left %v, want %d and %d", seqs(got), e2.Seq, e4.Seq)
	}

	// An erase takes the person's queued entries with the rest: routed
	// afterwards, one would bring them back.
	erased, err := store.Erase(ctx, a, store.ThreadKey{Page: e2.Page, PSID: e2.PSID})
	if err != nil || erased.Journal != 1 {
		t.Fatalf("erase: %+v %v, want the queued entry counted with the journal", erased, err)
	}
	got, err = a.PendingInbound(ctx, []int{1, 2, 3}, 0)
	if err != nil || fmt.Sprint(seqs(got)) != fmt.Sprint([]uint64{e4.Seq}) {
		t.Errorf("after the erase %v %v, want %d left", seqs(got), err, e4.Seq)
	}
}

// A listener is woken once it listens, then by every commit that appended
// entries (another store's included), not by one of another schema nor by
// one rolled back; it ends with its context, and its connection goes.
func TestListenInbound(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	elsewhere := replicas(t, 1)[0] // another schema of the same database
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woken := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() { done <- a.ListenInbound(ctx, func() { woken <- struct{}{} }) }()
	wait := func(what string) {
		t.Helper()
		select {
		case <-woken:
		case err := <-done:
			t.Fatalf("%s: the listener returned %v", what, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not woken", what)
		}
	}
	wait("listening")
	e := func() *store.InboundEntry {
		return &store.InboundEntry{Shard: 0, App: "bot", Page: "1", Channel: "messaging", ReceivedAt: time.Now(), Event: []byte(`{}`)}
	}
	appendInbound(t, elsewhere, e())
	boom := errors.New("boom")
	if err := b.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.(store.InboundTx).AppendInbound(e()); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	appendInbound(t, b, e(), e()) // one commit
	wait("a commit of another store")
	// Notifications come in commit order: the other schema's and the
	// rolled-back one's would have come first.
	if n := len(woken); n != 0 {
		t.Errorf("%d more wakes: the other schema's commit or the rollback woke it", n)
	}
	appendInbound(t, a, e())
	wait("a commit of its own store")

	var pid int
	if err := a.pool.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN baton_inbound'`).Scan(&pid); err != nil {
		t.Fatalf("the listener's session: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the listener returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not end with its context")
	}
	// Its session ends once the server sees the connection close.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		if err := a.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener's session is still open")
		}
		time.Sleep(10 * time.Millisecond) // polling the server's sessions
	}
}

// Close does not wait for a listener's context: it ends the listener,
// whose error says the store closed, and the next listen fails at once.
func TestListenInboundClose(t *testing.T) {
	db := replicas(t, 1)[0]
	woken := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- db.ListenInbound(context.Background(), func() { woken <- struct{}{} }) }()
	select {
	case <-woken:
	case err := <-done:
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { db.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for the listener")
	}
	if err := <-done; !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("the listener returned %v, want ErrClosed", err)
	}
	if err := db.ListenInbound(context.Background(), func() {}); !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("a listen after Close: %v, want ErrClosed", err)
	}
}

// The Acceptor's writes commit while a write of the DB's group is in
// progress, and count in CommitStats with the rest.
func TestAcceptorCommitsBesideUpdate(t *testing.T) {
	db := replicas(t, 1)[0]
	ctx := context.Background()
	before := db.CommitStats().Commits
	inside, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- db.Update(ctx, func(store.Tx) error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	e := &store.InboundEntry{Shard: 0, App: "bot", Page: "1", Channel: "messaging", ReceivedAt: time.Now(), Event: []byte(`{}`)}
	accepted := make(chan error, 1)
	go func() {
		accepted <- db.Acceptor().Update(ctx, func(tx store.Tx) error { return tx.(store.InboundTx).AppendInbound(e) })
	}()
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the accept waits behind the DB's transaction")
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if got := db.CommitStats().Commits; got != before+2 {
		t.Errorf("commits %d, then %d: want both groups' counted", before, got)
	}
	got, err := db.PendingInbound(ctx, []int{0}, 0)
	if err != nil || len(got) != 1 || got[0].Seq != e.Seq {
		t.Errorf("queued %v %v, want entry %d", seqs(got), err, e.Seq)
	}
}
