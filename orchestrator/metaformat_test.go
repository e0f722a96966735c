package orchestrator_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
)

// A bot that knows only Meta's webhooks, behind the "messenger" adapter:
// it gets the person's message in Meta's shape, signed with its own secret,
// once the thread is handed to it.
func TestMetaFormatAdapter(t *testing.T) {
	got := make(chan *messenger.Envelope, 10)
	metaBot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := messenger.Verify(r.Header, body, []byte(env["BILLING_HOOK"]), messenger.VerifyOptions{}); err != nil {
			t.Errorf("signature: %v", err)
		}
		e, err := messenger.ParseEnvelope(body)
		if err != nil {
			t.Errorf("not Meta's shape: %v\n%s", err, body)
		}
		got <- e
		io.WriteString(w, "EVENT_RECEIVED")
	}))
	defer metaBot.Close()
	h := newHarness(t, func(yaml *string) {
		// billing-bot's adapter is the second in the harness config.
		i := strings.Index(*yaml, "adapter: {type: http")
		j := strings.Index((*yaml)[i+1:], "adapter: {type: http") + i + 1
		end := strings.Index((*yaml)[j:], "}") + j + 1
		*yaml = (*yaml)[:j] + `adapter: {type: messenger, url: "` + metaBot.URL + `", secret_env: BILLING_HOOK}` + (*yaml)[end:]
	})
	h.say("hi")
	h.support.next()
	if st := h.do("POST", h.baton+"/v1/threads/"+pageID+"/"+psid+"/pass", env["SUPPORT_API"], map[string]string{"to": "billing-bot"}, nil); st != 200 {
		t.Fatalf("pass: %d", st)
	}
	h.say("Grüße / invoice")
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-got:
			var text string
			var ch messenger.Channel
			e.Each(func(_ *messenger.Entry, c messenger.Channel, ev *messenger.Event) {
				if ev.Message != nil {
					text, ch = ev.Message.Text, c
				}
			})
			if text == "" {
				continue // the pass_thread_control webhook
			}
			if text != "Grüße / invoice" || ch != messenger.ChannelMessaging {
				t.Fatalf("meta bot got %q on %s", text, ch)
			}
			return
		case <-deadline:
			t.Fatal("the Meta-format bot got no message")
		}
	}
}
