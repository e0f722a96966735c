package orchestrator_test

import (
	"fmt"
	"testing"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/orchestrator/api"
)

// GET /admin/deliveries lists a page at a time, with the cursor of the
// next: a bot down for hours leaves a long outbox, and one call must not
// read it all.
func TestDeliveriesListingPages(t *testing.T) {
	h := newHarness(t)
	h.support.setRespond(func(adapters.Delivery) (int, string) { return 503, "down" })
	const n = 5
	for i := range n {
		h.say(fmt.Sprintf("msg %d", i))
	}
	type page struct {
		Deliveries []api.DeliveryView
		NextCursor *string `json:"next_cursor"`
	}
	h.eventually("all pending", func() bool {
		var p page
		h.do("GET", h.admin+"/admin/deliveries?status=pending", adminToken, nil, &p)
		return len(p.Deliveries) == n
	})
	var sizes []int
	seen := map[uint64]bool{}
	cursor := ""
	for range n + 1 {
		var p page
		if st := h.do("GET", h.admin+"/admin/deliveries?status=pending&limit=2&cursor="+cursor, adminToken, nil, &p); st != 200 || p.NextCursor == nil {
			t.Fatalf("page after %q: %d, next_cursor %v", cursor, st, p.NextCursor)
		}
		sizes = append(sizes, len(p.Deliveries))
		for _, d := range p.Deliveries {
			if seen[d.ID] {
				t.Errorf("delivery %d listed twice", d.ID)
			}
			seen[d.ID] = true
		}
		if cursor = *p.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(sizes) != "[2 2 1]" || len(seen) != n {
		t.Errorf("pages of %v, %d deliveries; want [2 2 1], %d", sizes, len(seen), n)
	}
	// The dead letters page the same way; none yet.
	var dead page
	if st := h.do("GET", h.admin+"/admin/deliveries?status=dead&limit=1000", adminToken, nil, &dead); st != 200 || len(dead.Deliveries) != 0 || dead.NextCursor == nil || *dead.NextCursor != "" {
		t.Errorf("dead: %d %+v", st, dead)
	}
	for _, q := range []string{"status=pending&limit=0", "status=pending&limit=1001", "status=pending&limit=x",
		"status=pending&cursor=abc", "status=pending&cursor=0", "status=pending&cursor=-1", "status=dead&cursor=99999999999999999999999", "status=later"} {
		if st := h.do("GET", h.admin+"/admin/deliveries?"+q, adminToken, nil, nil); st != 400 {
			t.Errorf("%s: %d, want 400", q, st)
		}
	}
}
