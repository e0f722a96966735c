package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// testScope is a replica's scope as the orchestrator keeps one: its
// leases, each live until its local deadline.
type testScope []store.Lease

func (s testScope) Shards() []int {
	var out []int
	for _, l := range s {
		out = append(out, l.Shard)
	}
	slices.Sort(out)
	return out
}

func (s testScope) Leases() []store.Lease {
	var out []store.Lease
	for _, l := range s {
		if l.Live(time.Now()) {
			out = append(out, l)
		}
	}
	return out
}

func (s testScope) Owns(shard int) bool {
	for _, l := range s.Leases() {
		if l.Shard == shard {
			return true
		}
	}
	return false
}

func owner(k store.ThreadKey, app string, expires time.Time) store.Thread {
	return store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Secondary, Owner: app, ExpiresAt: expires}}
}

func threadExists(t *testing.T, db *DB, k store.ThreadKey) bool {
	t.Helper()
	err := db.View(func(tx store.ReadTx) error { _, err := tx.Thread(k); return err })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// wantNotOwned checks that err is a *store.NotOwnedError for k, that
// errors.Is finds ErrFenced in it.
func wantNotOwned(t *testing.T, err error, k store.ThreadKey, shard int) {
	t.Helper()
	var no *store.NotOwnedError
	if !errors.As(err, &no) || no.Key != k || no.Shard != shard || !errors.Is(err, store.ErrFenced) {
		t.Fatalf("error %v, want a *store.NotOwnedError for %s of shard %d that is ErrFenced", err, k, shard)
	}
}

// A scope's writes: a thread of a shard it holds commits; of a shard it
// does not hold (or whose lease it lost by its deadline), fails NotOwned
// with nothing written; under a lease stolen in the database, fails
// ErrFenced; a write of no thread's rows commits, even with no lease.
func TestScopedWrites(t *testing.T) {
	dbs := replicas(t, 2)
	a, b := dbs[0], dbs[1]
	ctx := context.Background()
	long := store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second}
	short := store.LeaseTerms{TTL: 300 * time.Millisecond, Margin: 100 * time.Millisecond}
	held, err := a.Acquire(ctx, "a", 1, long)
	if err != nil {
		t.Fatal(err)
	}
	zombie, err := a.Acquire(ctx, "a", 2, short)
	if err != nil {
		t.Fatal(err)
	}
	lapsed, err := a.Acquire(ctx, "a", 3, long)
	if err != nil {
		t.Fatal(err)
	}
	waitAcquire(t, b, "b", 2, long)
	zombie.Deadline = time.Now().Add(time.Minute) // what a paused replica still believes
	lapsed.Deadline = time.Now()                  // its holder stopped counting it
	all := testScope{held, zombie, lapsed}

	journal := func(tx store.Tx) error {
		now := time.Now()
		if err := tx.AppendJournal(&store.JournalEntry{ReceivedAt: now, App: "bot", Page: "1", Channel: "messaging", Event: []byte(`{}`)}); err != nil {
			return err
		}
		if _, err := tx.MarkSeen("m.1", now, now, time.Hour); err != nil {
			return err
		}
		if err := tx.PutDeletion(store.Deletion{Code: "c1", App: "bot", Status: store.DeletionPending, RequestedAt: now}); err != nil {
			return err
		}
		if _, err := tx.SweepSeen(now, time.Hour); err != nil {
			return err
		}
		if _, err := tx.PruneJournal(now.Add(-time.Hour), 10); err != nil {
			return err
		}
		if _, err := tx.PruneTranscript(now.Add(-time.Hour), 10); err != nil {
			return err
		}
		return tx.(store.InboundTx).AppendInbound(&store.InboundEntry{Shard: 4, App: "bot", Page: "1", Channel: "messaging",
			ReceivedAt: now, Event: []byte(`{}`)})
	}
	tests := []struct {
		name   string
		scope  testScope
		shards []int // of the threads written, in order
		// notOwned is the shard the call fails for; fenced, that it fails
		// ErrFenced but not NotOwned; otherwise it commits.
		notOwned int
		fenced   bool
	}{
		{"a thread of a shard held", all, []int{1}, -1, false},
		{"a thread of a shard not held", all, []int{4}, 4, false},
		{"a thread of a lease lapsed by its deadline", all, []int{3}, 3, false},
		{"a thread of a lease stolen in the database", all, []int{2}, -1, true},
		{"a thread held, in a scope with a stolen lease", all, []int{1, 1}, -1, false},
		{"held, then not held, in one call", all, []int{1, 5}, 5, false},
		{"no live lease, a thread", testScope{lapsed}, []int{1}, 1, false},
		{"no live lease, no thread: journal, marks, deletions, sweeps, inbound", testScope{lapsed}, nil, -1, false},
		{"no lease, no thread", nil, nil, -1, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := fmt.Sprint(1000 + i)
			var keys []store.ThreadKey
			for j, s := range tt.shards {
				keys = append(keys, keyIn2(a, page+fmt.Sprint(j), s))
			}
			err := a.Scoped(tt.scope).Update(ctx, func(tx store.Tx) error {
				if err := journal(tx); err != nil {
					return err
				}
				for _, k := range keys {
					if err := tx.PutThread(owner(k, "app1", time.Now().Add(time.Hour))); err != nil {
						return err
					}
				}
				return nil
			})
			t.Log(err)
			var no *store.NotOwnedError
			switch {
			case tt.notOwned >= 0:
				wantNotOwned(t, err, keys[slices.Index(tt.shards, tt.notOwned)], tt.notOwned)
			case tt.fenced:
				if !errors.Is(err, store.ErrFenced) || errors.As(err, &no) {
					t.Fatalf("error %v, want ErrFenced, not NotOwned", err)
				}
			case err != nil:
				t.Fatalf("the scoped write: %v", err)
			}
			for _, k := range keys {
				if got, want := threadExists(t, a, k), err == nil; got != want {
					t.Errorf("thread %s written: %v, want %v", k, got, want)
				}
			}
		})
	}
}

// Every write of a thread's rows goes through the fence: through a scope
// that holds shard 1, each commits for a thread of shard 1 and fails
// NotOwned for a thread of shard 4.
func TestScopedThreadWrites(t *testing.T) {
	a := replicas(t, 1)[0]
	ctx := context.Background()
	l, err := a.Acquire(ctx, "a", 1, store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sc := a.Scoped(testScope{l})
	now := time.Now()
	enqueue := func(tx store.Tx, k store.ThreadKey) (uint64, error) {
		d := &store.Delivery{App: "bot", Page: k.Page, PSID: k.PSID, Channel: "messaging", Kind: "message", Event: []byte(`{}`), CreatedAt: now}
		err := tx.Enqueue(d)
		return d.ID, err
	}
	delivery := func(tx store.Tx, id uint64) store.Delivery {
		d, err := tx.Delivery(id)
		if err != nil {
			t.Error(err)
		}
		return d
	}
	writes := []struct {
		name  string
		setup func(tx store.Tx, k store.ThreadKey) (uint64, error) // made unscoped; its id to write
		write func(tx store.Tx, k store.ThreadKey, id uint64) error
	}{
		{"PutThread", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error {
			return tx.PutThread(owner(k, "app1", now.Add(time.Hour)))
		}},
		{"RearmTimer", func(tx store.Tx, k store.ThreadKey) (uint64, error) {
			return 0, tx.PutThread(owner(k, "app1", now.Add(time.Hour)))
		}, func(tx store.Tx, k store.ThreadKey, _ uint64) error { return tx.RearmTimer(k) }},
		{"AppendHistory", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error {
			return tx.AppendHistory(k, store.HistoryEntry{At: now, Event: "pass"})
		}},
		{"PutIntent", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error {
			return tx.PutIntent(store.Intent{ThreadKey: k, App: "bot", Op: "pass", At: now})
		}},
		{"DeleteIntent", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error { return tx.DeleteIntent(k) }},
		{"PutJob", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error {
			return tx.PutJob(store.Job{ThreadKey: k, Rule: "r", At: now, Created: now})
		}},
		{"DeleteJob", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error { return tx.DeleteJob(k, "r") }},
		{"PutOneTimeToken", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error {
			return tx.PutOneTimeToken(store.OneTimeToken{Token: "t" + k.String(), Page: k.Page, PSID: k.PSID, Created: now})
		}},
		{"Enqueue", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error { _, err := enqueue(tx, k); return err }},
		{"UpdateDelivery", enqueue, func(tx store.Tx, k store.ThreadKey, id uint64) error {
			d := delivery(tx, id)
			d.Attempts++
			return tx.UpdateDelivery(d)
		}},
		{"DeleteDelivery", enqueue, func(tx store.Tx, k store.ThreadKey, id uint64) error { return tx.DeleteDelivery(id) }},
		{"KillDelivery", enqueue, func(tx store.Tx, k store.ThreadKey, id uint64) error { return tx.KillDelivery(delivery(tx, id)) }},
		{"ReviveDelivery", func(tx store.Tx, k store.ThreadKey) (uint64, error) {
			id, err := enqueue(tx, k)
			if err != nil {
				return 0, err
			}
			return id, tx.KillDelivery(delivery(tx, id))
		}, func(tx store.Tx, k store.ThreadKey, id uint64) error {
			_, err := tx.ReviveDelivery(id, now)
			return err
		}},
		{"ErasePerson", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error {
			_, _, err := tx.ErasePerson(k, "", 100)
			return err
		}},
		{"AppendTranscript", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error {
			return tx.AppendTranscript(k, &store.TranscriptEntry{At: now, RecordedAt: now, Kind: "message", Text: "hi"})
		}},
		{"PutPerson", nil, func(tx store.Tx, k store.ThreadKey, _ uint64) error {
			return tx.PutPerson(store.Person{ThreadKey: k, Name: "Ann", LearntAt: now})
		}},
		{"DeleteInbound", func(tx store.Tx, k store.ThreadKey) (uint64, error) {
			e := &store.InboundEntry{Shard: a.ShardOf(k), App: "bot", Page: k.Page, PSID: k.PSID, Channel: "messaging", ReceivedAt: now, Event: []byte(`{}`)}
			err := tx.(store.InboundTx).AppendInbound(e)
			return e.Seq, err
		}, func(tx store.Tx, k store.ThreadKey, seq uint64) error {
			return tx.(store.InboundTx).DeleteInbound(store.InboundEntry{Seq: seq, Shard: a.ShardOf(k), Page: k.Page, PSID: k.PSID})
		}},
	}
	for i, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			for _, shard := range []int{1, 4} {
				k := keyIn2(a, fmt.Sprint(2000+i), shard)
				var id uint64
				if w.setup != nil {
					if err := a.Update(ctx, func(tx store.Tx) error {
						var err error
						id, err = w.setup(tx, k)
						return err
					}); err != nil {
						t.Fatal(err)
					}
				}
				err := sc.Update(ctx, func(tx store.Tx) error { return w.write(tx, k, id) })
				if shard == 1 && err != nil {
					t.Fatalf("for a thread of the shard held: %v", err)
				}
				if shard == 4 {
					wantNotOwned(t, err, k, 4)
				}
			}
		})
	}
}

// UpdateFenced's write outside its leases is a NotOwnedError too.
func TestUpdateFencedNotOwned(t *testing.T) {
	a := replicas(t, 1)[0]
	ctx := context.Background()
	l, err := a.Acquire(ctx, "a", 1, store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	k := keyIn(a, 6)
	err = a.UpdateFenced(ctx, []store.Lease{l}, func(tx store.Tx) error { return tx.PutThread(owner(k, "app1", time.Time{})) })
	wantNotOwned(t, err, k, 6)
	if threadExists(t, a, k) {
		t.Error("the thread was written")
	}
}

// Two scopes over one store each scan their own shards' work (lanes,
// timers, jobs, intents), in View and in Update, and read the rest
// globally.
func TestScopedScans(t *testing.T) {
	db := replicas(t, 1)[0]
	ctx := context.Background()
	long := store.LeaseTerms{TTL: time.Minute, Margin: 5 * time.Second}
	var la, lb testScope
	for _, s := range []int{1, 2, 3} {
		who, scope := "a", &la
		if s == 3 {
			who, scope = "b", &lb
		}
		l, err := db.Acquire(ctx, who, s, long)
		if err != nil {
			t.Fatal(err)
		}
		*scope = append(*scope, l)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	keys := map[int]store.ThreadKey{}
	due := func(s int) time.Time { return now.Add(-time.Duration(s) * time.Minute) } // shard 3's is the earliest
	if err := db.Update(ctx, func(tx store.Tx) error {
		for _, s := range []int{1, 2, 3} {
			k := keyIn2(db, "7", s)
			keys[s] = k
			if err := tx.PutThread(owner(k, "app1", due(s))); err != nil {
				return err
			}
			if err := tx.PutJob(store.Job{ThreadKey: k, Rule: "r", At: due(s), Created: now}); err != nil {
				return err
			}
			if err := tx.PutIntent(store.Intent{ThreadKey: k, App: "bot", Op: "pass", At: now}); err != nil {
				return err
			}
			if err := tx.Enqueue(&store.Delivery{App: "bot", Page: k.Page, PSID: k.PSID, Kind: "message", Event: []byte(`{}`), CreatedAt: now}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// scan reads every scan of the replica's work, as the threads' shards.
	type scans struct {
		lanes, timers, dueJobs, jobs, intents []int
		nextTimer, nextJob                    time.Time
		threads, pending                      int
	}
	scan := func(tx store.ReadTx) (sc scans, err error) {
		shard := func(k store.ThreadKey) int { return db.ShardOf(k) }
		heads, err := tx.Lanes("bot", store.ThreadKey{}, 100)
		for _, h := range heads {
			sc.lanes = append(sc.lanes, shard(h.ThreadKey))
		}
		timers, err2 := tx.DueTimers(now, 100)
		for _, k := range timers {
			sc.timers = append(sc.timers, shard(k))
		}
		dj, err3 := tx.DueJobs(now, 100)
		for _, j := range dj {
			sc.dueJobs = append(sc.dueJobs, shard(j.ThreadKey))
		}
		js, err4 := tx.Jobs("r")
		for _, j := range js {
			sc.jobs = append(sc.jobs, shard(j.ThreadKey))
		}
		is, err5 := tx.Intents()
		for _, i := range is {
			sc.intents = append(sc.intents, shard(i.ThreadKey))
		}
		for _, l := range [][]int{sc.lanes, sc.jobs, sc.intents} {
			slices.Sort(l)
		}
		var err6, err7 error
		sc.nextTimer, _, err6 = tx.NextTimer()
		sc.nextJob, _, err7 = tx.NextJob()
		counts, err8 := tx.CountThreads()
		sc.threads = counts[string(statemachine.Secondary)]
		pending, err9 := tx.PendingDeliveries(0, 100)
		sc.pending = len(pending)
		return sc, errors.Join(err, err2, err3, err4, err5, err6, err7, err8, err9)
	}
	want := func(shards ...int) scans {
		// Due times are earliest first: the larger shard first.
		desc := slices.Clone(shards)
		slices.Reverse(desc)
		return scans{lanes: shards, timers: desc, dueJobs: desc, jobs: shards, intents: shards,
			nextTimer: due(desc[0]), nextJob: due(desc[0]), threads: 3, pending: 3}
	}
	for _, tt := range []struct {
		name string
		s    store.Store
		want scans
	}{
		{"the store", db, want(1, 2, 3)},
		{"scope a", db.Scoped(la), want(1, 2)},
		{"scope b", db.Scoped(lb), want(3)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var inView, inUpdate scans
			if err := tt.s.View(func(tx store.ReadTx) (err error) { inView, err = scan(tx); return err }); err != nil {
				t.Fatal(err)
			}
			if err := tt.s.Update(ctx, func(tx store.Tx) (err error) { inUpdate, err = scan(tx); return err }); err != nil {
				t.Fatal(err)
			}
			for what, got := range map[string]scans{"View": inView, "Update": inUpdate} {
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("%s: %+v\nwant %+v", what, got, tt.want)
				}
			}
		})
	}

	// A scope whose leases all lapsed sees none of the work.
	lapsed := slices.Clone(la)
	for i := range lapsed {
		lapsed[i].Deadline = time.Now()
	}
	if err := db.Scoped(lapsed).View(func(tx store.ReadTx) error {
		sc, err := scan(tx)
		if len(sc.lanes)+len(sc.timers)+len(sc.jobs)+len(sc.intents)+len(sc.dueJobs) != 0 || !sc.nextTimer.IsZero() || !sc.nextJob.IsZero() {
			t.Errorf("a scope without live leases: %+v", sc)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
