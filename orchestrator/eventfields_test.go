package orchestrator_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/orchestrator/api"
)

// An id that is not Meta's (digits, 1 to 20 of them) makes its event
// unusable: acknowledged, listed, counted, and never part of a store key,
// where a NUL would reach into another thread's keys. The valid event of
// the same batch is still routed.
func TestWebhookIDsValidated(t *testing.T) {
	h := newHarness(t)
	msg := func(sender, mid string) string {
		id, _ := json.Marshal(sender) // a NUL as \u0000
		return fmt.Sprintf(`{"sender":{"id":%s},"recipient":{"id":"%s"},"timestamp":1795557600000,"message":{"mid":"%s","text":"%s"}}`, id, pageID, mid, mid)
	}
	bad := []string{
		msg(psid+"\x00"+supportID, "m_nul"),
		msg("71234abc", "m_letters"),
		msg(strings.Repeat("7", 40), "m_long"),
		fmt.Sprintf(`{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":1795557600000,"pass_thread_control":{"previous_owner_app_id":null,"new_owner_app_id":"12ab","metadata":"x"}}`, psid, pageID),
		fmt.Sprintf(`{"sender":{"id":"%s"},"recipient":{"id":"-5"},"timestamp":1795557600000,"message":{"mid":"m_recipient","text":"x"}}`, psid),
	}
	body := fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":1795557600000,"messaging":[%s,%s]},{"id":"%s\u0000%s","time":1795557600000,"messaging":[%s]}]}`,
		pageID, strings.Join(bad, ","), msg(psid, "m_valid"), pageID, psid, msg(psid, "m_entry"))
	if st, got := h.post("support-bot", env["SUPPORT_SECRET"], []byte(body)); st != 200 || got != "EVENT_RECEIVED" {
		t.Fatalf("batch: %d %s", st, got)
	}
	if d := h.support.next(); text(d) != "m_valid" || d.PSID != psid {
		t.Fatalf("delivered %s %q to %q", d.Kind, text(d), d.PSID)
	}
	h.support.none(h)

	var unusable []string
	for _, e := range h.recentErrors() {
		if e.Kind == "webhook" && strings.Contains(e.Message, "not a Meta id") {
			unusable = append(unusable, e.Message)
		}
		if strings.ContainsRune(e.PSID+e.Page, 0) {
			t.Errorf("a NUL reached the error list: %+v", e)
		}
	}
	if len(unusable) != len(bad)+1 {
		t.Fatalf("%d unusable events listed, want %d: %q", len(unusable), len(bad)+1, unusable)
	}
	if got := h.metric(`baton_webhook_events_total{app="support-bot",result="unusable"}`); got != float64(len(bad)+1) {
		t.Fatalf("unusable counted %v, want %d", got, len(bad)+1)
	}
	var list struct{ Threads []api.ThreadView }
	h.do("GET", h.admin+"/admin/threads?page="+pageID, adminToken, nil, &list)
	if len(list.Threads) != 1 || list.Threads[0].PSID != psid || list.Threads[0].Owner != "" {
		t.Fatalf("threads %+v", list.Threads)
	}
}

// personMessage is a webhook of the harness's person, stamped ms.
func personMessage(mid string, ms int64) []byte {
	return []byte(fmt.Sprintf(`{"object":"page","entry":[{"id":"%s","time":%d,"messaging":[{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,"message":{"mid":"%s","text":"%s"}}]}]}`,
		pageID, ms, psid, pageID, ms, mid, mid))
}

// Meta's timestamps move a person's window only forward, and never past
// Baton's clock: a late or redelivered event would close the window, a
// clock far ahead would hold it open.
func TestEventTimesClamped(t *testing.T) {
	h := newHarness(t)
	secret := env["SUPPORT_SECRET"]
	now := h.clock.Now()
	lastMessage := func() time.Time {
		t.Helper()
		tv := h.batonThread()
		if tv.LastUserMessageAt == nil {
			t.Fatal("no last_user_message_at")
		}
		return *tv.LastUserMessageAt
	}
	post := func(mid string, at int64) {
		t.Helper()
		if st, _ := h.post("support-bot", secret, personMessage(mid, at)); st != 200 {
			t.Fatalf("%s: %d", mid, st)
		}
		h.support.next()
	}

	sent := now.Add(-time.Minute).Truncate(time.Millisecond)
	post("m_now", sent.UnixMilli())
	if got := lastMessage(); !got.Equal(sent) {
		t.Fatalf("last_user_message_at %v, want %v", got, sent)
	}
	post("m_late", now.Add(-2*time.Hour).UnixMilli())
	if got := lastMessage(); !got.Equal(sent) {
		t.Fatalf("a late event moved last_user_message_at back to %v (was %v)", got, sent)
	}
	post("m_2262", time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	if got := lastMessage(); got.After(h.clock.Now()) || got.Before(sent) {
		t.Fatalf("last_user_message_at %v after a message stamped 2262 (Baton's clock %v)", got, h.clock.Now())
	}
	post("m_zero", 0)
	if tv := h.batonThread(); tv.ExpiresAt != nil && tv.ExpiresAt.After(h.clock.Now().Add(25*time.Hour)) {
		t.Fatalf("expires_at %v", tv.ExpiresAt)
	}
}
