package orchestrator_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger/messengertest"
	"github.com/batonhq/baton/orchestrator/api"
)

type transcriptPage struct {
	Entries    []api.TranscriptEntryView `json:"entries"`
	NextCursor string                    `json:"next_cursor"`
}

// transcript reads the whole transcript through base (the admin or the
// bot API) with token, limit lines a request, oldest first.
func (h *harness) transcript(base, token string, limit int) []api.TranscriptEntryView {
	h.t.Helper()
	var all []api.TranscriptEntryView
	cursor := ""
	for range 50 {
		var p transcriptPage
		u := fmt.Sprintf("%s/threads/%s/%s/transcript?limit=%d&cursor=%s", base, pageID, psid, limit, url.QueryEscape(cursor))
		if st := h.do("GET", u, token, nil, &p); st != 200 {
			h.t.Fatalf("GET %s: %d", u, st)
		}
		if len(p.Entries) > limit {
			h.t.Fatalf("%d entries for a limit of %d", len(p.Entries), limit)
		}
		all = append(p.Entries, all...)
		if p.NextCursor == "" {
			return all
		}
		cursor = p.NextCursor
	}
	h.t.Fatal("the transcript does not end")
	return nil
}

func lines(es []api.TranscriptEntryView) string {
	var out []string
	for _, e := range es {
		switch e.Kind {
		case "handover":
			out = append(out, fmt.Sprintf("handover %s %s->%s", e.Event, e.From, e.To))
		case "echo":
			out = append(out, fmt.Sprintf("echo %s %q", e.App, e.Text))
		default:
			out = append(out, fmt.Sprintf("%s %s %q", e.Kind, e.From, e.Text))
		}
	}
	return strings.Join(out, "\n")
}

// TestTranscript: every app's copy of a message makes one line; a pass a
// bot asked for, the inbox's take and its agent's echo come in order; the admin and the bot API page through it; a
// search by a word finds the thread.
func TestTranscript(t *testing.T) {
	h := newHarness(t)
	h.support.setRespond(func(d adapters.Delivery) (int, string) {
		if d.Channel == "messaging" && text(d) == "billing please" {
			return 200, `{"actions":[{"type":"pass","to":"billing-bot","metadata":"billing"}]}`
		}
		return 200, ""
	})
	h.say("hello")
	h.support.next()
	h.say("billing please")
	h.support.next()
	h.billing.next() // the pass
	h.say("my invoice is wrong")
	h.billing.next()
	h.support.next() // the standby copy: two apps' copies of one message
	if st := h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/inbox/"+psid+"/messages?wait=true", "", map[string]string{"text": "Anna here"}, nil); st != 200 {
		t.Fatalf("inbox reply: %d", st)
	}
	h.settle()

	want := strings.Join([]string{
		`message ` + psid + ` "hello"`,
		`message ` + psid + ` "billing please"`,
		`handover pass ->billing-bot`, // from idle
		`message ` + psid + ` "my invoice is wrong"`,
		`echo page-inbox "Anna here"`,
	}, "\n")
	all := h.transcript(h.admin+"/admin", adminToken, 500)
	// The inbox's reply moves control: Meta's take webhook or the echo
	// itself shows it first (each app's copy comes on its own
	// connection), so the change of control is before or after the echo.
	got := lines(all)
	if len(all) == 6 && all[4].Kind == "handover" {
		all[4], all[5] = all[5], all[4]
	}
	if len(all) != 6 || all[5].Kind != "handover" || all[5].From != "billing-bot" || all[5].To != "page-inbox" || lines(all[:5]) != want {
		t.Fatalf("transcript:\n%s\nwant:\n%s\nand the inbox's take", got, want)
	}
	want = got
	if all[2].Metadata != "billing" || all[0].Mid == "" || all[0].Attachments == nil {
		t.Errorf("entries %+v", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].At.Before(all[i-1].At) {
			t.Errorf("entry %d at %v before entry %d at %v", i, all[i].At, i-1, all[i-1].At)
		}
	}
	// Pages of two, and of one, through the admin API and the bot API.
	if got := lines(h.transcript(h.admin+"/admin", adminToken, 2)); got != want {
		t.Errorf("paged by 2:\n%s", got)
	}
	if got := lines(h.transcript(h.baton+"/v1", env["BILLING_API"], 1)); got != want {
		t.Errorf("bot API paged by 1:\n%s", got)
	}
	// The newest lines when no cursor is given.
	var p transcriptPage
	if st := h.do("GET", h.baton+"/v1/threads/"+pageID+"/"+psid+"/transcript?limit=2", env["SUPPORT_API"], nil, &p); st != 200 || len(p.Entries) != 2 || lines(p.Entries) != strings.Join(strings.Split(want, "\n")[4:], "\n") || p.NextCursor == "" {
		t.Errorf("newest two: %d %+v", st, p)
	}
	// Refusals: no token, a page the bot is not on, a limit out of range,
	// a made-up cursor.
	for _, c := range []struct {
		url, token string
		status     int
	}{
		{h.baton + "/v1/threads/" + pageID + "/" + psid + "/transcript", "", 401},
		{h.baton + "/v1/threads/999888777/" + psid + "/transcript", env["SUPPORT_API"], 403},
		{h.admin + "/admin/threads/" + pageID + "/" + psid + "/transcript", "", 401},
		{h.admin + "/admin/threads/" + pageID + "/" + psid + "/transcript?limit=501", adminToken, 400},
		{h.admin + "/admin/threads/" + pageID + "/" + psid + "/transcript?cursor=nope", adminToken, 400},
		{h.admin + "/admin/threads/" + pageID + "/x1/transcript", adminToken, 400},
	} {
		if st := h.do("GET", c.url, c.token, nil, nil); st != c.status {
			t.Errorf("GET %s: %d, want %d", c.url, st, c.status)
		}
	}
	// Search by a word, by the PSID; nothing for a word never said.
	for q, n := range map[string]int{"INVOICE": 1, psid: 1, "refund": 0} {
		var res struct {
			Threads []api.TranscriptHitView `json:"threads"`
		}
		if st := h.do("GET", h.admin+"/admin/transcripts?q="+url.QueryEscape(q)+"&page="+pageID, adminToken, nil, &res); st != 200 || len(res.Threads) != n {
			t.Errorf("search %q: %d %+v, want %d threads", q, st, res, n)
		}
		if n == 1 && len(res.Threads) == 1 && (res.Threads[0].PSID != psid || res.Threads[0].Snippet == "") {
			t.Errorf("search %q: %+v", q, res.Threads[0])
		}
	}
}

// TestRetryPerApp: an operator puts a bot's dead letters back, a bounded
// number at a time, and is told how many went and how many are left.
func TestRetryPerApp(t *testing.T) {
	h := newHarness(t)
	h.support.setRespond(func(adapters.Delivery) (int, string) { return 400, "down" })
	for i := range 3 {
		h.say(fmt.Sprint("lost ", i))
	}
	var dead struct{ Deliveries []api.DeliveryView }
	h.eventually("three dead letters", func() bool {
		h.do("GET", h.admin+"/admin/deliveries?status=dead", adminToken, nil, &dead)
		return len(dead.Deliveries) == 3
	})
	h.support.setRespond(nil)
	type report struct{ Retried, Failed, Remaining int }
	var r report
	if st := h.do("POST", h.admin+"/admin/deliveries/retry?app=support-bot&limit=2", adminToken, nil, &r); st != 200 || r != (report{Retried: 2, Remaining: 1}) {
		t.Fatalf("retry two: %d %+v", st, r)
	}
	got := []string{text(h.support.next()), text(h.support.next())}
	if st := h.do("POST", h.admin+"/admin/deliveries/retry?app=support-bot", adminToken, nil, &r); st != 200 || r != (report{Retried: 1}) {
		t.Fatalf("retry the rest: %d %+v", st, r)
	}
	got = append(got, text(h.support.next()))
	if fmt.Sprint(got) != "[lost 0 lost 1 lost 2]" {
		t.Errorf("the bot got %q, want the dead letters oldest first", got)
	}
	for _, q := range []string{"app=nobody", "app=page-inbox", "app=support-bot&limit=0", ""} {
		if st := h.do("POST", h.admin+"/admin/deliveries/retry?"+q, adminToken, nil, nil); st != 400 {
			t.Errorf("retry ?%s: %d, want 400", q, st)
		}
	}
}

// TestLearnNames: with webhooks.learn_names, Baton asks Meta for a new
// person's name once, and the transcript search finds them by it.
func TestLearnNames(t *testing.T) {
	h := newHarness(t, func(yaml *string) {
		*yaml = strings.Replace(*yaml, "delivery:", "webhooks: {learn_names: true}\ndelivery:", 1)
	})
	h.say("hello")
	h.support.next()
	first, last := messengertest.PersonName(psid)
	var res struct {
		Threads []api.TranscriptHitView `json:"threads"`
	}
	h.eventually("the person's name", func() bool {
		h.do("GET", h.admin+"/admin/transcripts?q="+url.QueryEscape(strings.ToLower(last)), adminToken, nil, &res)
		return len(res.Threads) == 1
	})
	if res.Threads[0].Name != first+" "+last || res.Threads[0].PSID != psid {
		t.Errorf("found %+v", res.Threads[0])
	}
}
