package bolt

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/groupcommit"
	"github.com/batonhq/baton/store/storetest"
)

// MustOpen opens a store in dir, closed when the test ends.
func MustOpen(tb testing.TB, dir string) store.Store {
	tb.Helper()
	db, err := Open(filepath.Join(dir, "baton.db"), Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func TestSuite(t *testing.T) { storetest.Run(t, MustOpen) }

func TestSecondOpenFailsInsteadOfWaiting(t *testing.T) {
	dir := t.TempDir()
	MustOpen(t, dir)
	if _, err := Open(filepath.Join(dir, "baton.db"), Options{LockTimeout: 50 * time.Millisecond}); err == nil {
		t.Fatal("a second process could open the same file")
	}
}

func putThread(db *DB, i int) error {
	return db.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutThread(store.Thread{ThreadKey: store.ThreadKey{Page: "1", PSID: strconv.Itoa(i)}})
	})
}

func TestCommitWaitGoesOnceTheGroupIsFull(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "baton.db"), Options{CommitWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	errs := make(chan error, groupcommit.Target)
	for i := range groupcommit.Target {
		go func() { errs <- putThread(db, i) }()
	}
	for range groupcommit.Target {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a full group waited for the hour")
		}
	}
	if c := db.Stats().Commits.Load(); c != 1 {
		t.Fatalf("%d commits for one full group", c)
	}
}

func TestCommitWaitBoundsTheWait(t *testing.T) {
	const wait = 30 * time.Millisecond
	db, err := Open(filepath.Join(t.TempDir(), "baton.db"), Options{CommitWait: wait})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	if err := putThread(db, 1); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < wait {
		t.Fatalf("a lone write committed after %v, before the wait of %v", took, wait)
	}
	if c := db.Stats().Commits.Load(); c != 1 {
		t.Fatalf("%d commits", c)
	}
}

// Marks written before they were ordered by the event's time (a day bucket
// named by the date alone, keyed by the key alone) still catch
// redeliveries until the sweep drops their day.
func TestDedupReadsMarksOfTheEarlierLayout(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "baton.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	err = db.db.Update(func(btx *bbolt.Tx) error {
		day, err := btx.Bucket(bSeen).CreateBucket([]byte("20261124"))
		if err != nil {
			return err
		}
		return day.Put([]byte("m:old"), []byte{})
	})
	if err != nil {
		t.Fatal(err)
	}
	mark := func(now time.Time) (fresh bool) {
		if err := db.Update(context.Background(), func(tx store.Tx) error {
			fresh, err = tx.MarkSeen("m:old", now.Add(-time.Second), now, 48*time.Hour)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	if mark(now.Add(time.Hour)) {
		t.Fatal("a redelivery of an event marked in the earlier layout was fresh")
	}
	var days int
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		days, err = tx.SweepSeen(now.Add(4*24*time.Hour), 48*time.Hour)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if days != 1 || !mark(now.Add(4*24*time.Hour)) {
		t.Fatalf("sweep dropped %d days, want the earlier layout's one", days)
	}
}

// Records read with encoding/json/v2 under v1 options decode to what
// encoding/json decoded.
func TestRecordsDecodeAsEncodingJSONDid(t *testing.T) {
	at := time.Date(2026, 11, 30, 15, 4, 5, 123456789, time.FixedZone("x", 3600))
	for _, v := range []any{
		&store.Thread{ThreadKey: store.ThreadKey{Page: "1", PSID: "2"}, Thread: statemachine.Thread{State: statemachine.Primary, Owner: "3", ExpiresAt: at}, UpdatedAt: at},
		&store.HistoryEntry{At: at, Event: "pass", To: "263902037430900", By: "rule:human", Cause: "rule", Metadata: `<a href="x">&</a>`},
		&store.Delivery{ID: 7, App: "a", Event: json.RawMessage(` {"message": {"text": "a < b & c"}} `), CreatedAt: at, Status: "pending"},
		&store.Job{},
	} {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := json.Unmarshal(raw, want); err != nil {
			t.Fatal(err)
		}
		if err := unmarshal(raw, got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%T:\n got %+v\nwant %+v", v, got, want)
		}
	}
}

// CommitStats is a snapshot of the counters Stats exposes.
func TestCommitStatsSnapshot(t *testing.T) {
	db := MustOpen(t, t.TempDir()).(*DB)
	for i := range 3 {
		if err := putThread(db, i); err != nil {
			t.Fatal(err)
		}
	}
	st := db.CommitStats()
	if st.Commits != 3 || st.Calls != 3 || st.Commit <= 0 || st.Apply <= 0 || st.Apply > st.Commit {
		t.Fatalf("%+v", st)
	}
	if live := db.Stats(); uint64(live.Commits.Load()) != st.Commits || time.Duration(live.Nanos.Load()) != st.Commit {
		t.Fatalf("snapshot %+v, counters %d commits %d ns", st, live.Commits.Load(), live.Nanos.Load())
	}
}
