package orchestrator_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/orchestrator/deletion"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/store"
)

// metaSigned makes a signed_request as Meta's data deletion callback
// sends it: base64url without padding of the HMAC-SHA256, with the app
// secret, of the base64url payload, a dot, the payload.
func metaSigned(secret, payload string) string {
	p := base64.RawURLEncoding.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(p))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) + "." + p
}

// postForm POSTs a form and returns the status and the body.
func postForm(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A person writes and opts in to a one-time notification, their delivery
// dies, and Meta sends the app's data deletion callback for them: Baton
// answers with a status URL and a code, the erase runs, the status URL
// says done (after a restart too), and the admin API shows nothing of
// them while another person's thread, dead letter, journal and errors
// remain. Forged, expired and malformed requests are refused and erase
// nothing.
func TestDataDeletionCallback(t *testing.T) {
	h := newHarness(t)
	const other = "7123456789019999"
	h.support.setRespond(func(adapters.Delivery) (int, string) { return 400, `{"error":"not today"}` })
	h.say("please forget me")
	if st := h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/users/"+other+"/messages?wait=true", "", map[string]string{"text": "keep me"}, nil); st != 200 {
		t.Fatalf("other person: %d", st)
	}
	if st := h.do("POST", h.platURL+"/_platform/pages/"+pageID+"/users/"+psid+"/optins?wait=true", "", map[string]string{"payload": "BACK_IN_STOCK"}, nil); st != 200 {
		t.Fatalf("optin: %d", st)
	}
	dead := func() map[string]int {
		var res struct{ Deliveries []api.DeliveryView }
		h.do("GET", h.admin+"/admin/deliveries?status=dead", adminToken, nil, &res)
		n := map[string]int{}
		for _, d := range res.Deliveries {
			n[d.PSID]++
		}
		return n
	}
	h.eventually("both people's deliveries dead", func() bool { d := dead(); return d[psid] > 0 && d[other] > 0 })

	callback := h.baton + "/datadeletion/support-bot"
	now := h.clock.Now().Unix()
	payload := func(alg string, at int64, user string) string {
		return fmt.Sprintf(`{"algorithm":%q,"expires":0,"issued_at":%d,"user_id":%q}`, alg, at, user)
	}
	for _, tc := range []struct {
		name, url, signed string
		status            int
		says              string
	}{
		{"another app's secret", callback, metaSigned(env["BILLING_SECRET"], payload("HMAC-SHA256", now, psid)), 401, "signature does not match"},
		{"expired", callback, metaSigned(env["SUPPORT_SECRET"], payload("HMAC-SHA256", now-3*3600, psid)), 401, "too old"},
		{"another algorithm", callback, metaSigned(env["SUPPORT_SECRET"], payload("RS256", now, psid)), 400, "not HMAC-SHA256"},
		{"not signed at all", callback, "hello", 400, "malformed"},
		{"no such app", h.baton + "/datadeletion/nobody", metaSigned(env["SUPPORT_SECRET"], payload("HMAC-SHA256", now, psid)), 404, "no hosted app"},
		{"an app Baton does not host", h.baton + "/datadeletion/page-inbox", metaSigned(env["SUPPORT_SECRET"], payload("HMAC-SHA256", now, psid)), 404, "no hosted app"},
		{"no signed_request", callback, "", 400, "signed_request is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{}
			if tc.signed != "" {
				form.Set("signed_request", tc.signed)
			}
			st, body := postForm(t, tc.url, form)
			if st != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("%d %s, want %d saying %q", st, body, tc.status, tc.says)
			}
		})
	}
	if d := dead(); d[psid] == 0 {
		t.Fatal("a refused request erased something")
	}

	st, body := postForm(t, callback, url.Values{"signed_request": {metaSigned(env["SUPPORT_SECRET"], payload("HMAC-SHA256", now, psid))}})
	var answer struct {
		URL  string `json:"url"`
		Code string `json:"confirmation_code"`
	}
	if err := json.Unmarshal([]byte(body), &answer); st != 200 || err != nil || answer.Code == "" {
		t.Fatalf("callback: %d %s", st, body)
	}
	// No public_url in the config: the URL is on the Host Meta called.
	if answer.URL != h.baton+"/datadeletion/status/"+answer.Code {
		t.Fatalf("status URL %q, want it on %s", answer.URL, h.baton)
	}
	status := func() deletion.StatusView {
		req, _ := http.NewRequest("GET", answer.URL, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v deletion.StatusView
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status: %d %v", resp.StatusCode, err)
		}
		return v
	}
	h.eventually("the erase done", func() bool { return status().Status == store.DeletionDone })
	v := status()
	// The fake platform has no ID Matching API: the id is matched as a
	// PSID, and the record says so.
	if !strings.Contains(v.Matched, "as a PSID on 1 page(s); ids_for_pages not answered") {
		t.Errorf("matched %q", v.Matched)
	}
	if e := v.Erased; e.Threads != 1 || e.Dead < 1 || e.Journal < 2 || e.OneTimeTokens != 1 {
		t.Errorf("erased %+v: want the thread, its dead letters, its journal (message, optin) and its token", e)
	}

	// The admin API shows nothing of the person; the other is all there.
	tv := h.batonThread()
	if len(tv.History) != 0 || tv.Owner != "" {
		t.Errorf("thread after the erase: %+v", tv)
	}
	var list struct{ Threads []api.ThreadView }
	h.do("GET", h.admin+"/admin/threads?page="+pageID, adminToken, nil, &list)
	listed := map[string]bool{}
	for _, th := range list.Threads {
		listed[th.PSID] = true
	}
	if listed[psid] || !listed[other] {
		t.Errorf("threads listed %v: want %s and not %s", listed, other, psid)
	}
	if d := dead(); d[psid] != 0 || d[other] == 0 {
		t.Errorf("dead letters by PSID %v", d)
	}
	journal := func(who string) int {
		var res struct{ Entries []store.JournalEntry }
		if st := h.do("GET", h.admin+"/admin/journal?limit=1000&page="+pageID+"&psid="+who, adminToken, nil, &res); st != 200 {
			t.Fatalf("journal: %d", st)
		}
		return len(res.Entries)
	}
	if n, m := journal(psid), journal(other); n != 0 || m == 0 {
		t.Errorf("journal entries: %d of the erased person, %d of the other", n, m)
	}
	var errs struct{ Errors []recent.Error }
	h.do("GET", h.admin+"/admin/errors", adminToken, nil, &errs)
	kept := 0
	for _, e := range errs.Errors {
		if e.PSID == psid || strings.Contains(e.Message, psid) {
			t.Errorf("recent error about the erased person: %+v", e)
		}
		if e.PSID == other {
			kept++
		}
	}
	if kept == 0 {
		t.Error("the other person's dead delivery is gone from the recent errors")
	}

	// A person reads it as a page; after a restart it still answers.
	h.stop()
	h.startBaton()
	if after := status(); after.Status != store.DeletionDone || after.Erased != v.Erased {
		t.Errorf("after a restart: %+v", v)
	}
	resp, err := http.Get(answer.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), "Done: the conversation data") || strings.Contains(string(page), psid) {
		t.Errorf("status page %s: %s", resp.Header.Get("Content-Type"), page)
	}
	if st := h.do("GET", h.baton+"/datadeletion/status/NOSUCHCODE", "", nil, nil); st != 404 {
		t.Errorf("unknown code: %d", st)
	}

	// The operator's erase of the other person, through the admin API.
	var ev api.ErasedView
	if st := h.do("POST", h.admin+"/admin/threads/"+pageID+"/"+other+"/erase", adminToken, nil, &ev); st != 200 || ev.Erased.Threads != 1 || ev.Erased.Dead < 1 {
		t.Errorf("admin erase: %d %+v", st, ev)
	}
	if st := h.do("POST", h.admin+"/admin/threads/"+pageID+"/"+other+"/erase", "wrong", nil, nil); st != 401 {
		t.Errorf("admin erase without the token: %d", st)
	}
	if st := h.do("POST", h.admin+"/admin/threads/"+pageID+"/not-a-psid/erase", adminToken, nil, nil); st != 400 {
		t.Errorf("admin erase of a bad PSID: %d", st)
	}
}
