package orchestrator_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
	"github.com/batonhq/baton/store"
)

const otherPage = "100200300400599"

// secondPage adds a page where only support-bot is configured.
func secondPage(yaml *string) {
	*yaml += `  - id: "` + otherPage + `"
    mode: conversation_routing
    primary: support-bot
    tokens:
      support-bot: {token_env: PAGE_TOKEN_SUPPORT}
`
}

// A bot's token reads and acts only on the pages its app is configured
// on: billing-bot is not on the second page.
func TestBotTokenStaysOnItsPages(t *testing.T) {
	h := newHarness(t, secondPage)
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/v1/threads/" + otherPage + "/" + psid, env["BILLING_API"], http.StatusForbidden},
		{"POST", "/v1/threads/" + otherPage + "/" + psid + "/take", env["BILLING_API"], http.StatusForbidden},
		{"POST", "/v1/threads/" + otherPage + "/" + psid + "/release", env["BILLING_API"], http.StatusForbidden},
		{"GET", "/v1/threads/" + otherPage + "/" + psid, env["SUPPORT_API"], http.StatusOK},
		{"GET", "/v1/threads/" + pageID + "/" + psid, env["BILLING_API"], http.StatusOK},
		// Not a PSID: never part of a store key.
		{"GET", "/v1/threads/" + pageID + "/" + psid + "%00x", env["BILLING_API"], http.StatusBadRequest},
		{"GET", "/v1/threads/" + pageID + "/abc", env["SUPPORT_API"], http.StatusBadRequest},
	} {
		var out struct {
			Error struct{ Code, Message string }
		}
		if got := h.do(c.method, h.baton+c.path, c.token, nil, &out); got != c.want {
			t.Errorf("%s %s: %d %+v, want %d", c.method, c.path, got, out, c.want)
		}
	}
	var out struct{ Error struct{ Code string } }
	if st := h.do("GET", h.admin+"/admin/threads/"+pageID+"/"+psid+"%00", adminToken, nil, &out); st != http.StatusBadRequest || out.Error.Code != "invalid" {
		t.Fatalf("admin read of a PSID with a NUL: %d %+v", st, out)
	}
}

// /graph passes through only what a bot needs: the page token and the
// page's conversations are not among it.
func TestGraphAllowList(t *testing.T) {
	h := newHarness(t)
	before := len(h.platform.Calls())
	for _, path := range []string{
		"/graph/v21.0/me?fields=access_token",
		"/graph/v21.0/me?fields=id,access_token",
		"/graph/me?fields=name,conversations{messages}",
		"/graph/v21.0/" + pageID + "/conversations",
		"/graph/v21.0/" + pageID + "/roles",
		"/graph/v21.0/me/feed",
	} {
		var out messenger.ErrorEnvelope
		if st := h.do("GET", h.baton+path, env["SUPPORT_API"], nil, &out); st != http.StatusBadRequest || out.Error == nil || out.Error.Code != messenger.CodePermissionsError {
			t.Errorf("GET %s: %d %+v", path, st, out.Error)
		}
	}
	if n := len(h.platform.Calls()) - before; n != 0 {
		t.Fatalf("%d refused calls reached Meta", n)
	}
	// What a bot needs still goes through.
	var page struct{ ID, Name string }
	if st := h.do("GET", h.baton+"/graph/v21.0/me?fields=id,name", env["SUPPORT_API"], nil, &page); st != http.StatusOK || page.ID != pageID {
		t.Fatalf("GET me?fields=id,name: %d %+v", st, page)
	}
}

// Meta unreachable: the bot API and /graph say so with a retryable answer
// (503, Meta's transient error), not an internal error.
func TestGraphUnreachableIsRetryable(t *testing.T) {
	h := newHarness(t)
	if _, err := h.platform.AddFault(messengertest.Fault{Edge: "pass_thread_control", Mode: messengertest.FaultDrop}); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Error struct {
			Code      string
			Retryable bool
			Graph     *messenger.Error
		}
	}
	if st := h.do("POST", h.baton+"/v1/threads/"+pageID+"/"+psid+"/pass", env["SUPPORT_API"], map[string]string{"to": "billing-bot"}, &out); st != http.StatusServiceUnavailable ||
		out.Error.Code != "graph_unavailable" || !out.Error.Retryable || out.Error.Graph == nil || !out.Error.Graph.IsTransient {
		t.Fatalf("bot API: %d %+v", st, out)
	}
	g := graphAs(t, h, "v21.0")
	err := g.PassThreadControl(context.Background(), messenger.Credentials{AccessToken: env["SUPPORT_API"]}, psid, billingID, "")
	var ge *messenger.Error
	if !messenger.IsTransient(err) || !asGraph(err, &ge) || ge.HTTPStatus != http.StatusServiceUnavailable {
		t.Fatalf("/graph: %v", err)
	}
	if es := h.recentErrors(); len(es) == 0 || !strings.Contains(es[0].Message, "pass") {
		t.Fatalf("recent errors %+v", es)
	}
}

func asGraph(err error, ge **messenger.Error) bool {
	e, ok := err.(*messenger.Error)
	if ok {
		*ge = e
	}
	return ok
}

// GET /admin/backup streams a consistent copy of the live data file.
func TestAdminBackup(t *testing.T) {
	h := newHarness(t)
	h.say("hi")
	h.support.next()
	req, _ := http.NewRequest("GET", h.admin+"/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	path := filepath.Join(t.TempDir(), "copy.db")
	f, _ := os.Create(path)
	if _, err := io.Copy(f, resp.Body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	f.Close()
	db := mustOpenStore(t, path)
	defer db.Close()
	if err := db.View(func(tx store.ReadTx) error {
		_, err := tx.Thread(store.ThreadKey{Page: pageID, PSID: psid})
		return err
	}); err != nil {
		t.Fatalf("the copy lacks the thread: %v", err)
	}
}
