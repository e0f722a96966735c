package orchestrator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/orchestrator/api"
)

// The journal forgets webhooks past webhooks.journal_retention, but not
// one a pending delivery still reads its event from: after a restart the
// bot still gets it, byte for byte.
func TestJournalRetentionKeepsWhatDeliveriesRead(t *testing.T) {
	h := newHarness(t, func(yaml *string) { *yaml += "webhooks: {journal_retention: 2h}\n" })
	h.say("delivered long ago")
	h.support.next()
	h.support.setRespond(func(adapters.Delivery) (int, string) { return 503, "" })
	h.say("still owed")
	// The failed attempt's retry is on disk before the clock moves.
	h.eventually("the retry scheduled", func() bool {
		var out struct{ Deliveries []api.DeliveryView }
		h.do("GET", h.admin+"/admin/deliveries?status=pending", adminToken, nil, &out)
		return len(out.Deliveries) == 1 && out.Deliveries[0].Attempts == 1 &&
			strings.Contains(string(out.Deliveries[0].Event), "still owed")
	})

	// Three hours on, the hourly sweep prunes the first message's entry
	// only.
	h.clock.Advance(3 * time.Hour)
	h.eventually("the first entry pruned", func() bool { return h.metric("baton_journal_pruned_total") >= 1 })

	// A restart reads the outbox's event back from the journal.
	h.stop()
	h.support.setRespond(nil)
	h.startBaton()
	if n := h.metric("baton_journal_pruned_total"); n != 0 {
		t.Fatalf("the restarted Baton pruned %v before its first sweep", n)
	}
	h.clock.Advance(time.Minute) // the retry is due
	if d := h.support.next(); !strings.Contains(string(d.Event), "still owed") {
		t.Fatalf("after the restart: %s", d.Event)
	}
}
