package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest"
	"github.com/batonhq/baton/orchestrator/api"
)

// draw makes the histories: threads on both pages, most starting with the
// person writing.
func (run *propRun) draw(seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x62617465))
	for i := range run.v.threads {
		page := pageID
		if i%3 == 2 {
			page = socialPage
		}
		th := &propThread{i: i, page: page, psid: strconv.Itoa(7100000000000000 + i),
			ops: make([]propOp, run.v.rounds), did: make([]string, run.v.rounds), owner: make([]string, run.v.rounds)}
		for r := range th.ops {
			th.ops[r] = drawOp(rng)
		}
		if rng.IntN(10) < 8 {
			th.ops[0] = propOp{kind: "write"}
		}
		run.threads = append(run.threads, th)
		run.byKey[th.key()] = th
	}
}

// round runs every thread's op of round r, a few threads at once.
func (run *propRun) round(r int) {
	work := make(chan *propThread)
	var wg sync.WaitGroup
	for range run.v.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for th := range work {
				th.owner[r] = run.truth(th)
				th.did[r] = run.apply(th, r)
			}
		}()
	}
	for _, th := range run.threads {
		if th.ops[r].kind != "wait" {
			work <- th
		}
	}
	close(work)
	wg.Wait()
}

// apply performs one op and says what came of it. Handover metadata and
// texts are unique, so that no two events of a thread are the same bytes.
func (run *propRun) apply(th *propThread, r int) string {
	p := run.h.platform
	page, psid := messenger.ID(th.page), messenger.ID(th.psid)
	tag := fmt.Sprintf("t%d.r%d", th.i, r)
	result := func(err error) string {
		if err != nil {
			return "refused: " + err.Error()
		}
		return "ok"
	}
	switch o := th.ops[r]; o.kind {
	case "write":
		_, err := p.UserSends(page, psid, messengertest.UserMessage{Text: "hello " + tag})
		return result(err)
	case "inbox_reply":
		_, err := p.InboxReplies(page, psid, "agent "+tag)
		return result(err)
	case "ai_reply":
		_, err := p.InboxAIReplies(page, psid, "meta ai "+tag)
		return result(err)
	case "inbox_take":
		return result(p.InboxTakes(page, psid))
	case "inbox_done":
		return result(p.InboxDone(page, psid))
	case "pass", "take", "release":
		token := env["SUPPORT_API"]
		if o.app == "billing-bot" {
			token = env["BILLING_API"]
		}
		body := map[string]string{"metadata": tag}
		if o.to != "" {
			body["to"] = o.to
		}
		status, raw, err := run.call("POST", run.h.baton+"/v1/threads/"+th.page+"/"+th.psid+"/"+o.kind, token, body)
		if err != nil {
			return "error: " + err.Error()
		}
		if status == http.StatusOK {
			var tv api.ThreadView
			_ = json.Unmarshal(raw, &tv)
			return fmt.Sprintf("200, Baton's owner %q", tv.Owner)
		}
		var ae apiError
		_ = json.Unmarshal(raw, &ae)
		return fmt.Sprintf("%d %s: %s", status, ae.Error.Code, ae.Error.Message)
	}
	return "?"
}

// checkCalls fails the run on a bot API call that Baton did not answer,
// or answered with an internal error: a refusal (409) or Meta's (502) is
// an outcome, those are not.
func (run *propRun) checkCalls() {
	var bad []string
	for _, th := range run.threads {
		for r, did := range th.did {
			if strings.HasPrefix(did, "error: ") || strings.HasPrefix(did, "500 ") {
				bad = append(bad, fmt.Sprintf("%s round %d %s: %s", th.key(), r, th.ops[r], did))
			}
		}
	}
	if len(bad) > 0 {
		run.t.Errorf("%d bot API calls failed, the first: %s", len(bad), bad[0])
	}
}

// call is a request from a worker goroutine: errors are returned, not
// fatal.
func (run *propRun) call(method, url, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := run.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func (run *propRun) settle() {
	run.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run.h.platform.Settle(ctx); err != nil {
		run.t.Fatalf("platform did not settle: %v", err)
	}
}

// snapshotWebhooks merges the platform's record of webhook POSTs, which
// keeps only the latest 10,000: taken after every round, it misses none.
func (run *propRun) snapshotWebhooks() {
	for _, rec := range run.h.platform.Webhooks() {
		run.hooks[rec.ID] = rec
	}
}

// copyOf is one app's copy of one event: the event as canonical JSON.
type copyOf struct {
	channel string
	event   string
}

// canonical re-encodes JSON with sorted keys and Meta's numbers as they
// came, so that the platform's bytes and Baton's compare.
func canonical(raw []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// threadOf finds the history an event belongs to.
func (run *propRun) threadOf(page string, event string) *propThread {
	var ev struct {
		Sender    struct{ ID string } `json:"sender"`
		Recipient struct{ ID string } `json:"recipient"`
	}
	_ = json.Unmarshal([]byte(event), &ev)
	if th := run.byKey[page+"/"+ev.Sender.ID]; th != nil {
		return th
	}
	return run.byKey[page+"/"+ev.Recipient.ID]
}

// expectedCopies is what Meta delivered to Baton, by bot: every copy for
// support-bot (standby: true), only the messaging copies for billing-bot
// (it does not want standby).
func (run *propRun) expectedCopies() map[string]map[copyOf]bool {
	t := run.t
	ids := make([]int, 0, len(run.hooks))
	for id := range run.hooks {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	if len(ids) > 0 && (ids[0] != 1 || ids[len(ids)-1] != len(ids)) {
		t.Fatalf("webhook records %d..%d but %d of them: the platform's record dropped some between snapshots", ids[0], ids[len(ids)-1], len(ids))
	}
	out := map[string]map[copyOf]bool{"support-bot": {}, "billing-bot": {}}
	for _, id := range ids {
		rec := run.hooks[id]
		if rec.Status != "delivered" {
			// Baton answers every webhook it can parse with 200.
			t.Errorf("webhook %d to %s: %s after %d attempts (%s): %.300s", id, rec.App, rec.Status, rec.Attempts, rec.LastError, rec.Body)
			continue
		}
		var env struct {
			Entry []struct {
				ID        string            `json:"id"`
				Messaging []json.RawMessage `json:"messaging"`
				Standby   []json.RawMessage `json:"standby"`
			} `json:"entry"`
		}
		if err := json.Unmarshal([]byte(rec.Body), &env); err != nil {
			t.Fatalf("webhook %d: %v", id, err)
		}
		for _, en := range env.Entry {
			for ch, items := range map[string][]json.RawMessage{"messaging": en.Messaging, "standby": en.Standby} {
				for _, it := range items {
					ev, err := canonical(it)
					if err != nil {
						t.Fatalf("webhook %d: %v", id, err)
					}
					if ch == "standby" && rec.App == "billing-bot" {
						continue
					}
					out[rec.App][copyOf{ch, ev}] = true
				}
			}
		}
	}
	return out
}

// waitForDeliveries waits, bounded, until each bot got every copy Meta
// sent for it and Baton's outbox is empty.
func (run *propRun) waitForDeliveries(expected map[string]map[copyOf]bool) {
	deadline := time.Now().Add(30 * time.Second)
	for _, b := range []struct {
		name string
		bot  *bot
	}{{"support-bot", run.h.support}, {"billing-bot", run.h.billing}} {
		for time.Now().Before(deadline) {
			got := map[copyOf]bool{}
			for _, d := range b.bot.recorded() {
				ev, _ := canonical(d.Event)
				got[copyOf{d.Channel, ev}] = true
			}
			missing := 0
			for c := range expected[b.name] {
				if !got[c] {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for time.Now().Before(deadline) {
		var out struct{ Deliveries []api.DeliveryView }
		st, raw, err := run.call("GET", run.h.admin+"/admin/deliveries?status=pending", adminToken, nil)
		if err == nil && st == http.StatusOK && json.Unmarshal(raw, &out) == nil && len(out.Deliveries) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	run.t.Errorf("Baton's outbox still had pending deliveries after 30s")
}

// recorded is what the bot accepted so far.
func (b *bot) recorded() []adapters.Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.all)
}

// checkDeliveries is property (b): each bot got exactly the copies Meta
// sent for it, on Meta's channel, each under one delivery id.
func (run *propRun) checkDeliveries(expected map[string]map[copyOf]bool, problems map[*propThread][]string) {
	t := run.t
	var dead struct{ Deliveries []api.DeliveryView }
	if st, raw, err := run.call("GET", run.h.admin+"/admin/deliveries?status=dead", adminToken, nil); err != nil || st != http.StatusOK || json.Unmarshal(raw, &dead) != nil {
		t.Errorf("dead deliveries: %d %v", st, err)
	} else if len(dead.Deliveries) > 0 {
		t.Errorf("%d dead deliveries, the first %+v", len(dead.Deliveries), dead.Deliveries[0])
	}
	add := func(page, event, msg string) {
		th := run.threadOf(page, event)
		if th == nil {
			t.Errorf("%s (no thread: %s)", msg, event)
			return
		}
		problems[th] = append(problems[th], msg)
	}
	for _, b := range []struct {
		name string
		bot  *bot
	}{{"support-bot", run.h.support}, {"billing-bot", run.h.billing}} {
		byID := map[string]copyOf{}
		ids := map[copyOf]map[string]bool{}
		page := map[copyOf]string{}
		for _, d := range b.bot.recorded() {
			ev, err := canonical(d.Event)
			if err != nil {
				t.Errorf("%s delivery %s: %v", b.name, d.ID, err)
				continue
			}
			c := copyOf{d.Channel, ev}
			if d.App != b.name {
				add(d.PageID, ev, fmt.Sprintf("(b) %s's bot got delivery %s for app %s", b.name, d.ID, d.App))
			}
			if prev, ok := byID[d.ID]; ok && prev != c {
				add(d.PageID, ev, fmt.Sprintf("(b) %s: delivery id %s carried two events: %s %s and %s %s", b.name, d.ID, prev.channel, prev.event, c.channel, c.event))
			}
			byID[d.ID] = c
			if ids[c] == nil {
				ids[c] = map[string]bool{}
			}
			ids[c][d.ID] = true
			page[c] = d.PageID
		}
		for c, set := range ids {
			if len(set) > 1 {
				add(page[c], c.event, fmt.Sprintf("(b) %s got one copy under %d delivery ids %v: %s %s", b.name, len(set), slices.Sorted(maps.Keys(set)), c.channel, c.event))
			}
			if !expected[b.name][c] {
				why := "Meta did not send it to " + b.name
				if expected[b.name][copyOf{otherChannel(c.channel), c.event}] {
					why = "Meta sent it on " + otherChannel(c.channel)
				}
				add(page[c], c.event, fmt.Sprintf("(b) %s got %s on %s, but %s", b.name, c.event, c.channel, why))
			}
		}
		for c := range expected[b.name] {
			if ids[c] == nil && ids[copyOf{otherChannel(c.channel), c.event}] == nil {
				var en struct{ Recipient, Sender struct{ ID string } }
				_ = json.Unmarshal([]byte(c.event), &en)
				p := en.Recipient.ID
				if p != pageID && p != socialPage {
					p = en.Sender.ID
				}
				add(p, c.event, fmt.Sprintf("(b) %s never got %s, sent by Meta on %s", b.name, c.event, c.channel))
			}
		}
	}
}

func otherChannel(ch string) string {
	if ch == "messaging" {
		return "standby"
	}
	return "messaging"
}

// views reads Baton's record of every thread.
func (run *propRun) views() map[*propThread]api.ThreadView {
	return run.each(func(th *propThread) (api.ThreadView, error) {
		var tv api.ThreadView
		st, raw, err := run.call("GET", run.h.admin+"/admin/threads/"+th.page+"/"+th.psid, adminToken, nil)
		if err == nil && st != http.StatusOK {
			err = fmt.Errorf("%d %s", st, raw)
		}
		if err == nil {
			err = json.Unmarshal(raw, &tv)
		}
		return tv, err
	})
}

// reconcileAll asks Baton to reconcile every thread with Meta.
func (run *propRun) reconcileAll() {
	run.each(func(th *propThread) (api.ThreadView, error) {
		var tv api.ThreadView
		st, raw, err := run.call("POST", run.h.admin+"/admin/threads/"+th.page+"/"+th.psid+"/reconcile", adminToken, nil)
		if err == nil && st != http.StatusOK {
			err = fmt.Errorf("%d %s", st, raw)
		}
		return tv, err
	})
}

// each runs f for every thread, a few at once; an error fails the test.
func (run *propRun) each(f func(th *propThread) (api.ThreadView, error)) map[*propThread]api.ThreadView {
	var mu sync.Mutex
	out := map[*propThread]api.ThreadView{}
	var errs []string
	work := make(chan *propThread)
	var wg sync.WaitGroup
	for range run.v.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for th := range work {
				tv, err := f(th)
				mu.Lock()
				out[th] = tv
				if err != nil {
					errs = append(errs, th.key()+": "+err.Error())
				}
				mu.Unlock()
			}
		}()
	}
	for _, th := range run.threads {
		work <- th
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		run.t.Fatalf("%d requests failed, the first: %s", len(errs), errs[0])
	}
	return out
}

// truth is Meta's owner of the thread ("" idle).
func (run *propRun) truth(th *propThread) string {
	st, _ := run.h.platform.Thread(messenger.ID(th.page), messenger.ID(th.psid))
	if st.OwnerAppID == nil {
		return ""
	}
	return string(*st.OwnerAppID)
}

// reportDrift logs how many records of histories that were not
// announced differ from Meta before the reconcile pass, by the thread's
// last op: what only thread_owner tells.
func (run *propRun) reportDrift(before map[*propThread]api.ThreadView, aiTakes bool) {
	byLast := map[string]int{}
	n, of := 0, 0
	for _, th := range run.threads {
		if th.announced(aiTakes) {
			continue
		}
		of++
		if before[th].OwnerAppID == run.truth(th) {
			continue
		}
		n++
		last := "nothing"
		for r := len(th.ops) - 1; r >= 0; r-- {
			if th.ops[r].kind != "wait" {
				last = th.ops[r].String()
				break
			}
		}
		byLast[last]++
	}
	run.t.Logf("%s: before the reconcile pass, %d of %d histories with changes Meta did not announce differed from Meta; by their last op: %v",
		run.v.name, n, of, byLast)
}

// report fails t with the first few threads that broke a property:
// their ops, Baton's history and Meta's truth.
func (run *propRun) report(t *testing.T, what string, problems map[*propThread][]string, views map[*propThread]api.ThreadView) {
	if len(problems) == 0 {
		return
	}
	var failing []*propThread
	for th := range problems {
		failing = append(failing, th)
	}
	sort.Slice(failing, func(i, j int) bool { return failing[i].i < failing[j].i })
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d of %d threads broke the property (seed in the parent test's log); the first:", what, len(failing), len(run.threads))
	for _, th := range failing[:min(len(failing), 5)] {
		st, _ := run.h.platform.Thread(messenger.ID(th.page), messenger.ID(th.psid))
		owner := "idle"
		if st.OwnerAppID != nil {
			owner = st.OwnerApp + " (" + string(*st.OwnerAppID) + ")"
		}
		fmt.Fprintf(&b, "\n  thread %s (history %d):", th.key(), th.i)
		for _, p := range problems[th] {
			fmt.Fprintf(&b, "\n    %s", p)
		}
		fmt.Fprintf(&b, "\n    ops:%s", th.describe())
		fmt.Fprintf(&b, "\n    Meta: owner %s, expires %v, last user message %v", owner, st.ExpiresAt, st.LastUserMessageAt)
		tv := views[th]
		fmt.Fprintf(&b, "\n    Baton: owner %q (%s), expires %v; history:", tv.Owner, tv.OwnerAppID, tv.ExpiresAt)
		for _, e := range tv.History {
			fmt.Fprintf(&b, "\n      %s %s %s->%s by %s (%s) %s %s", e.At.Format("01-02T15:04:05.000"), e.Event, e.From, e.To, e.By, e.Cause, e.Metadata, e.Ignored)
		}
	}
	t.Error(b.String())
}

// appName names the harness's app ids.
func appName(id string) string {
	switch id {
	case "":
		return "idle"
	case supportID:
		return "support-bot"
	case billingID:
		return "billing-bot"
	case inboxID:
		return "page-inbox"
	}
	return id
}
