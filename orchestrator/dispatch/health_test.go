package dispatch_test

import (
	"testing"
	"time"

	"github.com/batonhq/baton/orchestrator/dispatch"
)

func TestHealthFailedKeepsTheOldest(t *testing.T) {
	h := dispatch.NewHealth()
	if since, ok := h.FailingSince(support); ok || !since.IsZero() {
		t.Fatalf("a bot nobody heard from: FailingSince = %v, %v", since, ok)
	}
	for _, tc := range []struct {
		created time.Time
		want    time.Time
	}{
		{start.Add(-time.Minute), start.Add(-time.Minute)},
		{start.Add(-time.Hour), start.Add(-time.Hour)}, // older: it moves back
		{start, start.Add(-time.Hour)},                 // newer: it stays
	} {
		h.Failed(support, tc.created)
		if since, ok := h.FailingSince(support); !ok || !since.Equal(tc.want) {
			t.Errorf("after Failed(%v): FailingSince = %v, %v; want %v", tc.created, since, ok, tc.want)
		}
	}
	if _, ok := h.FailingSince(billing); ok {
		t.Error("another bot's failure marked billing failing")
	}
}

func TestHealthDeliveredReportsRecovery(t *testing.T) {
	h := dispatch.NewHealth()
	steps := []struct {
		fail bool // Failed, else Delivered
		want bool // what Delivered reports
	}{
		{false, false}, // never failed
		{true, false},
		{false, true}, // recovered
		{false, false},
		{true, false},
		{true, false},
		{false, true}, // once, for two failures
	}
	for i, s := range steps {
		if s.fail {
			h.Failed(support, start)
			continue
		}
		if got := h.Delivered(support, start); got != s.want {
			t.Errorf("step %d: Delivered = %v, want %v", i, got, s.want)
		}
		if _, ok := h.FailingSince(support); ok {
			t.Errorf("step %d: still failing after Delivered", i)
		}
	}
}

func TestHealthRecovered(t *testing.T) {
	h := dispatch.NewHealth()
	if h.Recovered(support, start) {
		t.Error("Recovered for a bot that never delivered")
	}
	h.Failed(support, start.Add(-time.Hour))
	h.Delivered(support, start)
	for _, tc := range []struct {
		since time.Time
		want  bool
	}{
		{start.Add(-time.Minute), true},
		{start, true},
		{start.Add(time.Minute), false}, // not delivered since
	} {
		if got := h.Recovered(support, tc.since); got != tc.want {
			t.Errorf("Recovered(since %v) = %v, want %v", tc.since.Sub(start), got, tc.want)
		}
	}
	h.Failed(support, start)
	if h.Recovered(support, start.Add(-time.Minute)) {
		t.Error("Recovered while failing again")
	}
}
