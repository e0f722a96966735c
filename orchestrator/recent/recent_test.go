package recent

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batonhq/baton/clock"
)

func mustErrors(tb testing.TB, n int) (*Errors, *clock.Manual, *observer.ObservedLogs, *prometheus.CounterVec) {
	tb.Helper()
	clk := clock.NewManual(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	core, logs := observer.New(zapcore.DebugLevel)
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors_total"}, []string{"kind"})
	return New(n, clk, zap.New(core), counter), clk, logs, counter
}

// A flood of refusals keeps its own small ring: the other kinds stay
// listed, and the list is newest first across kinds.
func TestRingsPerKind(t *testing.T) {
	r, clk, _, counter := mustErrors(t, 8)
	r.Record(Error{Kind: "delivery", App: "support-bot", Message: "dead"})
	clk.Advance(time.Millisecond)
	r.Record(Error{Kind: "graph", Message: "pass: 500"})
	for i := range 10000 {
		r.Record(Error{Kind: "webhook", Refusal: "signature", Message: fmt.Sprint("forged ", i)})
	}
	r.Record(Error{Kind: "webhook", App: "support-bot", Message: "unusable body"})
	for i := range 20 {
		r.Record(Error{Kind: "rule", Message: fmt.Sprint("rule ", i)})
	}

	list := r.List()
	count := map[string]int{}
	for _, e := range list {
		count[e.Kind+"/"+e.Refusal]++
	}
	want := map[string]int{"delivery/": 1, "graph/": 1, "webhook/signature": 2, "webhook/": 1, "rule/": 8}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("kept %v, want %v", count, want)
	}
	if list[0].Message != "rule 19" || list[8].Message != "unusable body" || list[9].Message != "forged 9999" || list[len(list)-1].Message != "dead" {
		t.Fatalf("not newest first: %+v", list)
	}
	if got := testutil.ToFloat64(counter.WithLabelValues("webhook")); got != 10001 {
		t.Fatalf("webhook problems counted %v, want 10001", got)
	}
}

// Refusals are logged at most once a second per cause, saying how many
// were not; other problems are logged every time.
func TestRefusalsLogSampled(t *testing.T) {
	r, clk, logs, _ := mustErrors(t, 8)
	for range 1000 {
		r.Record(Error{Kind: "webhook", Refusal: "signature", Message: "signature refused"})
		r.Record(Error{Kind: "webhook", Refusal: "unknown_app", Message: "unknown app"})
	}
	r.Record(Error{Kind: "delivery", Message: "dead"})
	r.Record(Error{Kind: "delivery", Message: "dead again"})
	if n := logs.Len(); n != 4 {
		t.Fatalf("%d lines, want one per refusal cause and one per dead letter: %v", n, logs.All())
	}
	clk.Advance(999 * time.Millisecond)
	r.Record(Error{Kind: "webhook", Refusal: "signature"})
	if n := logs.Len(); n != 4 {
		t.Fatalf("logged again within the second: %d lines", n)
	}
	clk.Advance(time.Millisecond)
	r.Record(Error{Kind: "webhook", Refusal: "signature"})
	lines := logs.FilterField(zap.String("refusal", "signature")).All()
	if len(lines) != 2 {
		t.Fatalf("%d signature lines after a second, want 2", len(lines))
	}
	if got := lines[1].ContextMap()["not_logged"]; got != int64(1000) {
		t.Fatalf("not_logged %v, want 1000 (999 in the first second, one more in the next)", got)
	}
}

// Forget drops one person's problems from every ring, keeps the others in
// their order, and the rings go on filling as before.
func TestForget(t *testing.T) {
	r, _, _, _ := mustErrors(t, 5)
	for _, e := range []Error{
		{Kind: "delivery", Page: "1", PSID: "7", Message: "dead"},
		{Kind: "delivery", Page: "1", PSID: "8", Message: "dead"},
		{Kind: "delivery", Page: "2", PSID: "7", Message: "another page's person 7"},
		{Kind: "graph", Message: "pass for 7: (#10) not allowed"},
		{Kind: "graph", Page: "1", Message: "send to 77 failed"},
		{Kind: "delivery", Page: "1", PSID: "7", Message: "dead again"},
		{Kind: "delivery", Page: "1", PSID: "9", Message: "6"},
	} {
		r.Record(e)
	}
	if n := r.Forget("1", "7"); n != 3 {
		t.Fatalf("forgot %d problems, want 3", n)
	}
	var got []string
	for _, e := range r.List() {
		got = append(got, e.Page+"/"+e.PSID+" "+e.Message)
	}
	want := []string{"1/9 6", "1/ send to 77 failed", "2/7 another page's person 7", "1/8 dead"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after Forget: %q, want %q", got, want)
	}
	for i := range 5 {
		r.Record(Error{Kind: "delivery", Page: "1", PSID: "8", Message: fmt.Sprint("more ", i)})
	}
	if n := len(r.List()); n != 6 { // 5 deliveries, 1 graph
		t.Fatalf("%d problems kept after the rings filled again, want 6", n)
	}
	if r.Forget("1", "") != 0 {
		t.Fatal("an empty PSID forgot something")
	}
}
