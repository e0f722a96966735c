package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// baton_ready follows the ready channel; baton_bot_failing_seconds is the
// age of each bot's oldest failing delivery, 0 for a healthy bot.
func TestReadyAndBotFailing(t *testing.T) {
	m := New()
	ready := make(chan struct{})
	m.RegisterReady(func() <-chan struct{} { return ready })
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	m.RegisterBots(func() []string { return []string{"support-bot", "billing-bot"} }, func(app string) (time.Time, bool) {
		if app == "billing-bot" {
			return now.Add(-90 * time.Second), true
		}
		return time.Time{}, false
	}, func() time.Time { return now })
	want := func(ready string) string {
		return `
# HELP baton_ready 1 once Baton recovered its work and runs (/readyz answers 200), 0 before.
# TYPE baton_ready gauge
baton_ready ` + ready + `
# HELP baton_bot_failing_seconds Age of the bot's oldest failing delivery; 0 while its deliveries succeed.
# TYPE baton_bot_failing_seconds gauge
baton_bot_failing_seconds{app="billing-bot"} 90
baton_bot_failing_seconds{app="support-bot"} 0
`
	}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want("0")), "baton_ready", "baton_bot_failing_seconds"); err != nil {
		t.Fatal(err)
	}
	close(ready)
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want("1")), "baton_ready", "baton_bot_failing_seconds"); err != nil {
		t.Fatal(err)
	}
}
