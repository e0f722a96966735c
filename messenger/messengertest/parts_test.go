package messengertest_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
)

// The Graph API's parts keep their own state under their own locks
// (packages profiles and setup) and take the world's as they need it: a
// send that checks a persona holds the world's lock, then the profiles';
// a profile read asks the world before it takes the profiles'. Calls to
// every part at once must not race (run with -race: a part whose state
// is not under its lock fails here) and must all finish.
func TestPartsConcurrently(t *testing.T) {
	e := newEnv(t)
	e.say("hi")
	appA := messenger.AppAccessToken(botA, secretA)
	fields := strings.Join(messengertest.AllFields, ",")
	calls := []struct {
		name   string
		method string
		path   string
		body   func() string
	}{
		{"profile", "GET", "/v21.0/" + psid + "?access_token=" + tokenA, nil},
		{"persona", "POST", "/v21.0/me/personas?access_token=" + tokenA, func() string {
			return `{"name":"Ana","profile_picture_url":"https://example.com/ana.png"}`
		}},
		{"send as persona", "POST", "/v21.0/me/messages?access_token=" + tokenA, nil},
		{"messenger profile", "POST", "/v21.0/me/messenger_profile?access_token=" + tokenB, func() string { return `{"greeting":[{"locale":"default","text":"hi"}]}` }},
		{"subscribed_apps", "POST", "/v21.0/me/subscribed_apps?subscribed_fields=" + fields + "&access_token=" + tokenA, func() string { return "" }},
		{"debug_token", "GET", "/v21.0/debug_token?input_token=" + tokenB + "&access_token=" + appA, nil},
		{"app subscriptions", "GET", "/v21.0/" + botA + "/subscriptions?access_token=" + appA, nil},
		{"thread owner", "GET", "/v21.0/me/thread_owner?recipient=" + psid + "&access_token=" + tokenB, nil},
	}
	var persona struct{ ID string }
	if st := e.ctlGraph("POST", calls[1].path, calls[1].body(), &persona); st != 200 {
		t.Fatalf("persona: %d", st)
	}
	calls[2].body = func() string {
		return `{"recipient":{"id":"` + psid + `"},"messaging_type":"RESPONSE","message":{"text":"hello"},"persona_id":"` + persona.ID + `"}`
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				body := ""
				if c.body != nil {
					body = c.body()
				}
				if st, err := graphCall(e.url, c.method, c.path, body); err != nil || st != 200 {
					t.Errorf("%s: %d %v", c.name, st, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			if st, err := graphCall(e.url, "POST", "/_platform/pages/"+pageID+"/users/"+psid+"/messages", `{"text":"again"}`); err != nil || st != 200 {
				t.Errorf("user message: %d %v", st, err)
				return
			}
		}
	}()
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("the Graph API's parts deadlocked")
	}
	e.settle()
}

// graphCall sends one request and reads its answer, without failing the
// test from a goroutine.
func graphCall(base, method, path, body string) (int, error) {
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}
