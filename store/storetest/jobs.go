package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
)

func testJobs(t *testing.T, open Opener) {
	dir := t.TempDir()
	s := open(t, dir)
	a := store.ThreadKey{Page: "1", PSID: "a"}
	b := store.ThreadKey{Page: "1", PSID: "b"}
	update(t, s, func(tx store.Tx) error {
		for _, j := range []store.Job{
			{ThreadKey: a, Rule: "return", At: t0.Add(30 * time.Minute)},
			{ThreadKey: b, Rule: "return", At: t0.Add(10 * time.Minute)},
			{ThreadKey: a, Rule: "escalate", At: t0, Target: "inbox"},
			// Replacing a job moves it in the time index.
			{ThreadKey: a, Rule: "return", At: t0.Add(time.Hour), Reason: "moved"},
		} {
			if err := tx.PutJob(j); err != nil {
				return err
			}
		}
		return nil
	})
	check := func(now time.Time, want ...string) {
		t.Helper()
		view(t, s, func(tx store.ReadTx) error {
			due, err := tx.DueJobs(now, 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range due {
				got = append(got, j.Rule+":"+j.PSID)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("due at %s: %v, want %v", now.Sub(t0), got, want)
			}
			return nil
		})
	}
	check(t0, "escalate:a")
	check(t0.Add(30*time.Minute), "escalate:a", "return:b")
	check(t0.Add(time.Hour), "escalate:a", "return:b", "return:a")
	view(t, s, func(tx store.ReadTx) error {
		if j, err := tx.Job(a, "return"); err != nil || j.Reason != "moved" {
			t.Errorf("job a/return: %+v %v", j, err)
		}
		if js, _ := tx.Jobs("return"); len(js) != 2 {
			t.Errorf("return jobs: %d", len(js))
		}
		if next, ok, _ := tx.NextJob(); !ok || !next.Equal(t0) {
			t.Errorf("next job %v %v", next, ok)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		if err := tx.DeleteJob(a, "escalate"); err != nil {
			return err
		}
		return tx.DeleteJob(a, "no-such-rule")
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	check(t0.Add(time.Hour), "return:b", "return:a")
	view(t, s, func(tx store.ReadTx) error {
		if _, err := tx.Job(a, "escalate"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted job: %v", err)
		}
		return nil
	})
}
