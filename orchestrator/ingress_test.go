package orchestrator_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/orchestrator/recent"
)

// post sends a webhook body to Baton as Meta would, signed with secret.
func (h *harness) post(app, secret string, body []byte) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.baton+"/webhooks/"+app, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set(messenger.HeaderSignature256, messenger.Sign([]byte(secret), body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func messageBody(page, mid, text string) []byte {
	return []byte(fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":1795557600000,"messaging":[{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":1795557600000,"message":{"mid":"%s","text":"%s"}}]}]}`,
		page, psid, page, mid, text))
}

func (h *harness) recentErrors() []recent.Error {
	var out struct{ Errors []recent.Error }
	h.do("GET", h.admin+"/admin/errors", adminToken, nil, &out)
	return out.Errors
}

func TestIngressRefusesAndAccepts(t *testing.T) {
	h := newHarness(t)
	secret := env["SUPPORT_SECRET"]

	// Wrong signature: 401, nothing stored, nothing delivered.
	if st, _ := h.post("support-bot", "wrong", messageBody(pageID, "m_1", "x")); st != 401 {
		t.Fatalf("wrong signature: %d", st)
	}
	if st, _ := h.post("support-bot", "", messageBody(pageID, "m_1", "x")); st != 401 {
		t.Fatalf("no signature: %d", st)
	}
	// Unknown app: 404.
	if st, _ := h.post("nobody", secret, messageBody(pageID, "m_1", "x")); st != 404 {
		t.Fatalf("unknown app: %d", st)
	}
	// Oversized: 413.
	big := messageBody(pageID, "m_big", strings.Repeat("a", 2<<20))
	if st, _ := h.post("support-bot", secret, big); st != 413 {
		t.Fatalf("oversized: %d", st)
	}
	// Signed but unusable: acknowledged (Meta must not retry it forever), shown in errors.
	for _, body := range []string{`{"object":`, `{"object":"whatsapp_business_account","entry":[{"id":"1"}]}`} {
		if st, _ := h.post("support-bot", secret, []byte(body)); st != 200 {
			t.Fatalf("unusable %s: %d", body, st)
		}
	}
	if st, _ := h.post("support-bot", secret, messageBody("999", "m_2", "x")); st != 200 {
		t.Fatalf("unknown page: %d", st)
	}
	errs := h.recentErrors()
	if len(errs) < 4 || !strings.Contains(errs[0].Message, "page not in the config") || errs[0].Page != "999" {
		t.Fatalf("recent errors %+v", errs)
	}
	h.support.none(h)

	// A good one, then Meta's redelivery of it: applied and delivered once.
	for range 3 {
		if st, body := h.post("support-bot", secret, messageBody(pageID, "m_3", "once")); st != 200 || body != "EVENT_RECEIVED" {
			t.Fatalf("good webhook: %d %s", st, body)
		}
	}
	if d := h.support.next(); text(d) != "once" {
		t.Fatalf("got %q", text(d))
	}
	h.support.none(h)
}

func TestVerificationHandshake(t *testing.T) {
	h := newHarness(t)
	get := func(token string) (int, string) {
		resp, err := http.Get(h.baton + "/webhooks/support-bot?hub.mode=subscribe&hub.verify_token=" + token + "&hub.challenge=1158201444")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get(env["SUPPORT_VERIFY"]); st != 200 || body != "1158201444" {
		t.Fatalf("good token: %d %q", st, body)
	}
	if st, _ := get("nope"); st != 403 {
		t.Fatalf("bad token: %d", st)
	}
	// The fake platform performs the same handshake.
	if err := h.platform.VerifyCallback(t.Context(), "billing-bot"); err != nil {
		t.Fatal(err)
	}
}

func TestDeadLetterAndRetry(t *testing.T) {
	h := newHarness(t)
	h.support.setRespond(func(adapters.Delivery) (int, string) { return 400, "no thanks" })
	h.say("will be refused")
	var dead struct{ Deliveries []api.DeliveryView }
	h.eventually("a dead letter", func() bool {
		h.do("GET", h.admin+"/admin/deliveries?status=dead", adminToken, nil, &dead)
		return len(dead.Deliveries) == 1
	})
	dl := dead.Deliveries[0]
	if dl.App != "support-bot" || dl.Attempts != 1 || !strings.Contains(dl.LastError, "400") || dl.Status != "dead" {
		t.Fatalf("dead letter %+v (a 400 is not retried)", dl)
	}
	h.support.setRespond(nil)
	if st := h.do("POST", fmt.Sprintf("%s/admin/deliveries/%d/retry", h.admin, dl.ID), adminToken, nil, nil); st != 200 {
		t.Fatalf("retry: %d", st)
	}
	d := h.support.next()
	if text(d) != "will be refused" || d.ID != fmt.Sprintf("dlv_%d", dl.ID) {
		t.Fatalf("retried delivery %+v", d)
	}
	h.do("GET", h.admin+"/admin/deliveries?status=dead", adminToken, nil, &dead)
	if len(dead.Deliveries) != 0 {
		t.Fatalf("still dead: %+v", dead.Deliveries)
	}
	if st := h.do("POST", h.admin+"/admin/deliveries/99999/retry", adminToken, nil, nil); st != 404 {
		t.Fatalf("retry unknown: %d", st)
	}
}

// A bot that is down for a while gets everything, in order per thread,
// once it is back; a delivery carries the same id on every attempt.
func TestBotDownThenBack(t *testing.T) {
	h := newHarness(t)
	var attempts = map[string]int{}
	h.support.setRespond(func(d adapters.Delivery) (int, string) {
		attempts[d.ID]++
		return 503, "down"
	})
	const n = 6
	for i := range n {
		h.say(fmt.Sprintf("msg %d", i))
	}
	// Let some retries fail, on Baton's clock.
	for range 3 {
		h.clock.Advance(300 * time.Millisecond)
	}
	h.support.setRespond(nil)
	var got []string
	for len(got) < n {
		select {
		case d := <-h.support.got:
			got = append(got, text(d))
		case <-time.After(10 * time.Millisecond):
			h.clock.Advance(250 * time.Millisecond) // backoff timers run on Baton's clock
		}
	}
	for i, s := range got {
		if s != fmt.Sprintf("msg %d", i) {
			t.Fatalf("order broken: %v", got)
		}
	}
}

func TestAdminRequiresToken(t *testing.T) {
	h := newHarness(t)
	routes := []struct{ method, path string }{
		{"GET", "/admin/threads"},
		{"GET", "/admin/threads/" + pageID + "/" + psid},
		{"POST", "/admin/threads/" + pageID + "/" + psid + "/pass"},
		{"POST", "/admin/threads/" + pageID + "/" + psid + "/take"},
		{"POST", "/admin/threads/" + pageID + "/" + psid + "/release"},
		{"POST", "/admin/threads/" + pageID + "/" + psid + "/reconcile"},
		{"POST", "/admin/threads/" + pageID + "/" + psid + "/erase"},
		{"GET", "/admin/threads/" + pageID + "/" + psid + "/transcript"},
		{"GET", "/admin/transcripts"},
		{"GET", "/admin/journal"},
		{"GET", "/admin/deliveries"},
		{"POST", "/admin/deliveries/1/retry"},
		{"POST", "/admin/deliveries/retry?app=support-bot"},
		{"GET", "/admin/errors"},
		{"GET", "/admin/cluster"},
		{"GET", "/admin/backup"},
		{"GET", "/debug/pprof/"},
		{"GET", "/debug/pprof/heap"},
	}
	want := "GET /admin/threads|GET /admin/threads/{page}/{psid}|POST /admin/threads/{page}/{psid}/{op:pass|take|release}|" +
		"POST /admin/threads/{page}/{psid}/reconcile|POST /admin/threads/{page}/{psid}/erase|" +
		"GET /admin/threads/{page}/{psid}/transcript|GET /admin/transcripts|GET /admin/journal|" +
		"GET /admin/deliveries|POST /admin/deliveries/{id:[0-9]+}/retry|POST /admin/deliveries/retry|GET /admin/errors|GET /admin/cluster|GET /admin/backup"
	if got := strings.Join(api.AdminRoutes(), "|"); got != want {
		t.Fatalf("admin routes are now %s; add the new ones to this test", got)
	}
	for _, rt := range routes {
		for _, tok := range []string{"", "wrong"} {
			if st := h.do(rt.method, h.admin+rt.path, tok, nil, nil); st != 401 {
				t.Errorf("%s %s with token %q: %d", rt.method, rt.path, tok, st)
			}
		}
	}
	for _, open := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(h.admin + open)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", open, resp, err)
		}
		resp.Body.Close()
	}
	// The bot API refuses other apps' and unknown tokens.
	if st := h.do("GET", h.baton+"/v1/threads/"+pageID+"/"+psid, "nope", nil, nil); st != 401 {
		t.Errorf("bot API, bad token: %d", st)
	}
}

func TestAdminActionsAndListing(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()

	var tv api.ThreadView
	if st := h.do("POST", h.admin+"/admin/threads/"+pageID+"/"+psid+"/pass", adminToken, map[string]string{"to": "page-inbox", "metadata": "vip"}, &tv); st != 200 || tv.Owner != "page-inbox" {
		t.Fatalf("admin pass: %d %+v", st, tv)
	}
	if h.platformOwner() != inboxID {
		t.Fatalf("platform owner %q", h.platformOwner())
	}
	// The owner is Meta's inbox: a hosted app allowed to take does, then releases.
	if st := h.do("POST", h.admin+"/admin/threads/"+pageID+"/"+psid+"/release", adminToken, nil, &tv); st != 200 || tv.State != "idle" {
		t.Fatalf("admin release: %d %+v", st, tv)
	}
	if st := h.do("POST", h.admin+"/admin/threads/"+pageID+"/"+psid+"/take", adminToken, map[string]string{"app": "billing-bot"}, &tv); st != 409 {
		t.Fatalf("take without permission: %d (want 409 with the reason)", st)
	}
	var list struct {
		Threads    []api.ThreadView
		NextCursor string `json:"next_cursor"`
	}
	if st := h.do("GET", h.admin+"/admin/threads?owner=idle&page="+pageID, adminToken, nil, &list); st != 200 || len(list.Threads) != 1 || list.Threads[0].PSID != psid {
		t.Fatalf("list idle: %d %+v", st, list)
	}
	h.do("GET", h.admin+"/admin/threads?owner=support-bot", adminToken, nil, &list)
	if len(list.Threads) != 0 {
		t.Fatalf("list by owner: %+v", list)
	}
	if st := h.do("GET", h.admin+"/admin/threads?limit=0", adminToken, nil, nil); st != 400 {
		t.Fatalf("bad limit: %d", st)
	}
	// Metrics show the work.
	resp, _ := http.Get(h.admin + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`baton_webhook_events_total{app="support-bot",result="accepted"}`, `baton_threads{state="idle"} 1`, `baton_graph_calls_total{op="pass",result="ok"} 1`, "baton_webhook_ack_seconds_bucket"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
