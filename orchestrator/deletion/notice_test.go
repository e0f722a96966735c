package deletion

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// On pageA: two apps with Baton's envelope (support-bot, inbox), one
// with Meta's format (sdk-bot) and Meta's Page Inbox (not hosted); on
// pageOther only billing-bot.
const noticeYAML = `
admin: {token_env: ADMIN_TOKEN}
graph: {url: "http://127.0.0.1:1"}
apps:
  - {name: support-bot, app_id: "512345678901234", secret_env: SUPPORT_SECRET, verify_token_env: SUPPORT_VERIFY, adapter: {type: http, url: "http://127.0.0.1:1/support", secret_env: HOOK}}
  - {name: inbox, app_id: "512345678901235", secret_env: SUPPORT_SECRET, verify_token_env: SUPPORT_VERIFY, adapter: {type: http, url: "http://127.0.0.1:1/inbox", secret_env: HOOK}}
  - {name: sdk-bot, app_id: "512345678901236", secret_env: SUPPORT_SECRET, verify_token_env: SUPPORT_VERIFY, adapter: {type: messenger, url: "http://127.0.0.1:1/sdk", secret_env: HOOK}}
  - {name: billing-bot, app_id: "623456789012345", secret_env: SUPPORT_SECRET, verify_token_env: SUPPORT_VERIFY, adapter: {type: http, url: "http://127.0.0.1:1/billing", secret_env: HOOK}}
  - {name: page-inbox, app_id: "263902037430900"}
pages:
  - id: "100200300400500"
    primary: support-bot
    secondary: [inbox, sdk-bot, page-inbox]
    tokens: {support-bot: {token_env: PAGE_TOKEN}, inbox: {token_env: PAGE_TOKEN}, sdk-bot: {token_env: PAGE_TOKEN}}
  - id: "100200300400502"
    primary: billing-bot
    tokens: {billing-bot: {token_env: PAGE_TOKEN}}
`

// notice is a delivery of the outbox as the test compares it.
func notice(d store.Delivery) string {
	return fmt.Sprintf("%s %s/%s %s %s", d.App, d.Page, d.PSID, d.Kind, d.Event)
}

// An erase tells each hosted app on the page that takes Baton's envelope,
// once, with an event naming only the page and the PSID: not an app of
// another page, not an app with Meta's format, not an app Baton does not
// host. The notices are not the person's: a second erase finds none of
// them, pending or dead, and tells the apps again.
func TestEraseNotifiesTheAppsOnThePage(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(noticeYAML), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	none := adapterFunc(func(context.Context, *adapters.Delivery) (adapters.Result, error) { return adapters.Result{}, nil })
	top, err := topology.New(cfg, map[string]adapters.Adapter{"support-bot": none, "inbox": none, "sdk-bot": none, "billing-bot": none})
	if err != nil {
		t.Fatal(err)
	}
	db := mustStore(t)
	gone := store.ThreadKey{Page: pageA, PSID: userID}
	err = db.Update(context.Background(), func(tx store.Tx) error {
		for _, app := range []string{"support-bot", "sdk-bot"} { // the person's own pending events
			if err := tx.Enqueue(&store.Delivery{App: app, Page: gone.Page, PSID: gone.PSID, Kind: "message", Event: json.RawMessage(`{"message":{"text":"hi"}}`)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var handed []string
	s := New(Deps{Store: db, Topology: top, Clock: clock.NewManual(now), Deliver: func(ds []store.Delivery) {
		for _, d := range ds {
			handed = append(handed, notice(d))
		}
	}})
	outbox := func() (pending, dead []string) {
		t.Helper()
		err := db.View(func(tx store.ReadTx) error {
			ps, err := tx.PendingDeliveries(0, 0)
			for _, d := range ps {
				pending = append(pending, notice(d))
			}
			if err != nil {
				return err
			}
			ds, err := tx.DeadDeliveries(0, 0)
			for _, d := range ds {
				dead = append(dead, notice(d))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(pending)
		return pending, dead
	}
	event := `{"type":"baton.erasure","page_id":"` + pageA + `","psid":"` + userID + `","erased_at":"` + now.UTC().Format("2006-01-02T15:04:05Z07:00") + `"}`
	want := []string{"inbox " + pageA + "/ baton.erasure " + event, "support-bot " + pageA + "/ baton.erasure " + event}

	erased, err := s.Erase(context.Background(), gone)
	if err != nil {
		t.Fatal(err)
	}
	if erased.Pending != 2 {
		t.Errorf("the person's pending deliveries: %d erased, want 2", erased.Pending)
	}
	sort.Strings(handed)
	if fmt.Sprint(handed) != fmt.Sprint(want) {
		t.Errorf("handed to the dispatcher\n%q\nwant\n%q", handed, want)
	}
	if pending, _ := outbox(); fmt.Sprint(pending) != fmt.Sprint(want) {
		t.Fatalf("outbox after the erase\n%q\nwant\n%q", pending, want)
	}

	// One notice dies (its bot refused it); the erase again finds
	// neither it nor the pending one, and tells both apps again.
	err = db.Update(context.Background(), func(tx store.Tx) error {
		ps, err := tx.PendingDeliveries(0, 0)
		if err != nil {
			return err
		}
		ps[0].DeadAt = now
		return tx.KillDelivery(ps[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Erase(context.Background(), gone)
	if err != nil {
		t.Fatal(err)
	}
	if again.Total() != 0 {
		t.Errorf("a second erase removed %+v, want nothing", again)
	}
	pending, dead := outbox()
	if len(pending) != 3 || len(dead) != 1 || len(handed) != 4 {
		t.Errorf("after a second erase: pending %q, dead %q, handed %d; want 3 pending, 1 dead, 4 handed", pending, dead, len(handed))
	}

	// A page that left the config has no app to tell.
	handed = nil
	if _, err := s.Erase(context.Background(), store.ThreadKey{Page: "100200300400509", PSID: userID}); err != nil {
		t.Fatal(err)
	}
	if len(handed) != 0 {
		t.Errorf("an erase on a page not in the config told %q", handed)
	}
}
