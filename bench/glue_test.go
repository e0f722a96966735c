package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/messenger"
)

func TestGlueForwardsEachEventVerified(t *testing.T) {
	secret := []byte("s")
	rec := NewRecorder()
	rec.MetaSecret = secret
	bot := httptest.NewServer(rec)
	defer bot.Close()
	glue := httptest.NewServer(Glue(secret, bot.URL, &http.Client{Timeout: 5 * time.Second}, 1<<20))
	defer glue.Close()
	res, err := Run(context.Background(), Options{URL: glue.URL, Secret: secret, Pages: []string{"1"}, AppID: "9",
		Threads: 8, Connections: 4, Duration: 200 * time.Millisecond, TextBytes: 100, RunID: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked == 0 || res.Failed != 0 || rec.Missing(res.AckedMids) != 0 || rec.OutOfOrder != 0 || rec.Duplicates != 0 {
		t.Fatalf("acked %d failed %d; bot missing %d, out of order %d, dups %d", res.Acked, res.Failed, rec.Missing(res.AckedMids), rec.OutOfOrder, rec.Duplicates)
	}
	// A bot that refuses (here: a signature it does not accept) fails
	// the webhook: the glue keeps nothing to retry.
	rec.MetaSecret = []byte("other")
	res, _ = Run(context.Background(), Options{URL: glue.URL, Secret: secret, Pages: []string{"1"}, Threads: 1, Connections: 1, Duration: 50 * time.Millisecond})
	if res.Acked != 0 || res.Failed == 0 {
		t.Fatalf("bot refusing: %+v", res)
	}
}

func TestRecorderReadsEveryFormat(t *testing.T) {
	key := []byte("hook")
	rc := NewRecorder()
	rc.HookKey, rc.MetaSecret = key, []byte("app")
	ev := func(psid, mid string, seq int) string {
		return `{"sender":{"id":"` + psid + `"},"message":{"mid":"` + mid + `","text":"seq=` + strconv.Itoa(seq) + ` sent=1"}}`
	}
	post := func(body string, sign func(*http.Request, []byte)) int {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		sign(r, []byte(body))
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, r)
		return w.Code
	}
	meta := func(r *http.Request, b []byte) {
		r.Header.Set(messenger.HeaderSignature256, messenger.Sign([]byte("app"), b))
	}
	std := func(id string) func(*http.Request, []byte) {
		return func(r *http.Request, b []byte) {
			ts := time.Now().Unix()
			r.Header.Set("webhook-id", id)
			r.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
			r.Header.Set("webhook-signature", webhook.Sign(key, id, ts, b))
		}
	}
	codes := []int{
		post(`{"object":"page","entry":[{"id":"1","messaging":[`+ev("p", "m1", 1)+`]},{"id":"1","messaging":[`+ev("q", "m2", 1)+`]}]}`, meta),
		post(`{"batch":[{"id":"dlv_3","kind":"message","event":`+ev("p", "m3", 2)+`},{"id":"dlv_4","kind":"message","event":`+ev("q", "m4", 2)+`}]}`, std("batch_x")),
		post(`{"id":"dlv_5","kind":"message","event":`+ev("p", "m5", 3)+`}`, std("dlv_5")),
		post(`{"id":"dlv_3","kind":"message","event":`+ev("p", "m3", 2)+`}`, std("dlv_3")), // a repeat
		post(`{"id":"dlv_6","kind":"message","event":`+ev("p", "m6", 4)+`}`, func(r *http.Request, b []byte) {
			r.Header.Set(messenger.HeaderSignature256, messenger.Sign([]byte("wrong"), b))
		}),
		post(`{"id":"dlv_7","kind":"message","event":`+ev("p", "m7", 5)+`}`, func(*http.Request, []byte) {}), // unsigned
	}
	if want := []int{200, 200, 200, 200, 401, 401}; !slices.Equal(codes, want) {
		t.Fatalf("answers %v, want %v", codes, want)
	}
	if n := rc.Missing(map[string]bool{"m1": true, "m2": true, "m3": true, "m4": true, "m5": true}); n != 0 || rc.Duplicates != 1 || rc.OutOfOrder != 0 {
		t.Fatalf("missing %d, duplicates %d, out of order %d", n, rc.Duplicates, rc.OutOfOrder)
	}
}
