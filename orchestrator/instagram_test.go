package orchestrator_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/orchestrator/api"
)

const (
	igAccount = "17841400100200300"
	igScoped  = "6123456789012345" // an Instagram-scoped id
	igInbox   = "1217981644879628"
)

// instagramPage adds an Instagram professional account beside the page,
// with Instagram's inbox as its secondary.
func instagramPage(yaml *string) {
	*yaml = strings.Replace(*yaml, "pages:\n", `  - name: ig-inbox
    app_id: "`+igInbox+`"
pages:
`, 1)
	*yaml += `  - id: "` + igAccount + `"
    platform: instagram
    primary: support-bot
    secondary: [ig-inbox]
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT}
`
}

func igBody(object, item string) []byte {
	return []byte(fmt.Sprintf(`{"object":"%s","entry":[{"id":"%s","time":1,"messaging":[%s]}]}`, object, igAccount, item))
}

// Instagram accounts are pages with object "instagram": the same routing,
// Instagram's inbox taking threads by replying.
func TestInstagramAccount(t *testing.T) {
	h := newHarness(t, instagramPage)
	ts := h.ms(-time.Minute)
	msg := fmt.Sprintf(`{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,"message":{"mid":"ig_m1","text":"hola"}}`, igScoped, igAccount, ts)
	if st, _ := h.post("support-bot", env["SUPPORT_SECRET"], igBody("instagram", msg)); st != 200 {
		t.Fatalf("instagram webhook: %d", st)
	}
	if d := h.support.next(); d.PageID != igAccount || d.PSID != igScoped || d.Channel != "messaging" || text(d) != "hola" {
		t.Fatalf("delivered %+v %q", d, text(d))
	}
	// A Messenger webhook naming the Instagram account is not used.
	if st, _ := h.post("support-bot", env["SUPPORT_SECRET"], igBody("page", strings.Replace(msg, "ig_m1", "ig_m2", 1))); st != 200 {
		t.Fatalf("object page for an Instagram account: %d", st)
	}
	h.support.none(h)
	if es := h.recentErrors(); len(es) == 0 || !strings.Contains(es[0].Message, `object "page"`) {
		t.Fatalf("recent errors %+v", es)
	}
	// Instagram's inbox replies: it took the thread.
	echo := fmt.Sprintf(`{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,"message":{"mid":"ig_e1","is_echo":true,"app_id":%s,"text":"an agent here"}}`,
		igAccount, igScoped, ts+1000, igInbox)
	if st, _ := h.post("support-bot", env["SUPPORT_SECRET"], []byte(strings.Replace(string(igBody("instagram", echo)), `"messaging"`, `"standby"`, 1))); st != 200 {
		t.Fatal(st)
	}
	var tv api.ThreadView
	if st := h.do("GET", h.admin+"/admin/threads/"+igAccount+"/"+igScoped, adminToken, nil, &tv); st != 200 || tv.Owner != "ig-inbox" {
		t.Fatalf("%d %+v", st, tv)
	}
}
