package orchestrator_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sync"
	"testing"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/api"
)

// A flood of forged webhooks, badly signed or to app names made up on
// the spot, mints no metric series per name and leaves the problems that
// matter listed in /admin/errors.
func TestForgedWebhooksStayBounded(t *testing.T) {
	h := newHarness(t)
	// A dead letter first: what an operator must still see afterwards.
	h.support.setRespond(func(adapters.Delivery) (int, string) { return 400, "no thanks" })
	h.say("will be refused")
	var dead struct{ Deliveries []api.DeliveryView }
	h.eventually("a dead letter", func() bool {
		h.do("GET", h.admin+"/admin/deliveries?status=dead", adminToken, nil, &dead)
		return len(dead.Deliveries) == 1
	})

	const forged = 10000
	body := messageBody(pageID, "m_forged", "x")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < forged; i += 8 {
				app := "support-bot"
				if i%2 == 1 {
					app = fmt.Sprintf("app-%d-%x", i, i*7919)
				}
				req, _ := http.NewRequest("POST", h.baton+"/webhooks/"+app, bytes.NewReader(body))
				req.Header.Set(messenger.HeaderSignature256, messenger.Sign([]byte("forged"), body))
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if codes[401] != forged/2 || codes[404] != forged/2 {
		t.Fatalf("answers %v, want %d of 401 and of 404", codes, forged/2)
	}

	// The label set is the configured apps and "unknown".
	apps := map[string]bool{}
	series := regexp.MustCompile(`^baton_webhook_requests_total\{app="([^"]*)",code="(\d+)"\} (\d+)`)
	resp, err := http.Get(h.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := series.FindStringSubmatch(sc.Text()); m != nil {
			apps[m[1]] = true
		}
	}
	resp.Body.Close()
	for app := range apps {
		if app != "support-bot" && app != "billing-bot" && app != "unknown" {
			t.Errorf("%d app labels on baton_webhook_requests_total, e.g. %q", len(apps), app)
			break
		}
	}
	for series, want := range map[string]float64{
		`baton_webhook_requests_total{app="support-bot",code="401"}`: forged / 2,
		`baton_webhook_requests_total{app="unknown",code="404"}`:     forged / 2,
	} {
		if got := h.metric(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	// The dead letter is still listed, after the refusals, newest first.
	errs := h.recentErrors()
	var kept, refusals int
	for i, e := range errs {
		switch {
		case e.Kind == "delivery" && e.App == "support-bot":
			kept++
		case e.Kind == "webhook":
			refusals++
		}
		if i > 0 && e.At.After(errs[i-1].At) {
			t.Fatalf("not newest first at %d: %+v", i, errs)
		}
	}
	if kept != 1 || refusals == 0 || refusals > 200 || errs[0].Kind != "webhook" {
		t.Fatalf("%d errors listed: %d dead letters, %d webhook refusals, first %+v", len(errs), kept, refusals, errs[0])
	}
}
