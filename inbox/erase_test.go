package inbox

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/adapters"
)

// deliverTo POSTs a signed delivery of the person psid on page 100.
func (f *fixture) deliverTo(id, psid, kind, owner, event string) int {
	f.t.Helper()
	body, _ := json.Marshal(adapters.Delivery{ID: id, App: "inbox", PageID: "100", PSID: psid, Channel: "messaging", Kind: kind, Attempt: 1,
		Thread: adapters.Thread{Owner: owner}, Event: json.RawMessage(event)})
	return f.signedPost(id, body)
}

// erasure is Baton's notice that it erased the person psid of page 100:
// a delivery of the page, not of a thread.
func (f *fixture) erasure(id, psid string) int {
	f.t.Helper()
	ev, _ := json.Marshal(adapters.Erasure{Type: adapters.KindErasure, PageID: "100", PSID: psid, ErasedAt: time.Now()})
	body, _ := json.Marshal(adapters.Delivery{ID: id, App: "inbox", PageID: "100", Kind: adapters.KindErasure, Attempt: 1, Event: ev})
	return f.signedPost(id, body)
}

// Baton's erasure notice deletes everything the inbox's file keeps of
// the person (the conversation, its claim and the person's name, the
// messages and notes, the unread marks), tells open pages, and leaves
// another person's conversation as it was.
func TestInboxDeletesAnErasedPerson(t *testing.T) {
	f := newFixture(t)
	const gone, kept = "7000000000000123", "7000000000000124"
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	for i, psid := range []string{gone, kept} {
		handed := fmt.Sprintf(`{"sender":{"id":%q},"recipient":{"id":"100"},"timestamp":%d,"pass_thread_control":{"new_owner_app_id":%q,"metadata":"asked"}}`, psid, t0, appID)
		said := fmt.Sprintf(`{"sender":{"id":%q},"recipient":{"id":"100"},"timestamp":%d,"message":{"mid":"m_%d","text":"my address is 1 Main St"}}`, psid, t0+1, i)
		if code := f.deliverTo(fmt.Sprint("dlv_", 2*i), psid, "pass_thread_control", "inbox", handed); code != http.StatusNoContent {
			t.Fatalf("handover of %s: %d", psid, code)
		}
		if code := f.deliverTo(fmt.Sprint("dlv_", 2*i+1), psid, "message", "inbox", said); code != http.StatusNoContent {
			t.Fatalf("message of %s: %d", psid, code)
		}
		f.in.refresh(t.Context(), "100", psid) // the person's name
	}
	anna, ben := f.signIn("anna"), f.signIn("ben")
	for _, a := range []*agent{anna, ben} {
		for _, psid := range []string{gone, kept} {
			if code := a.do("POST", "/api/conversations/100/"+psid+"/read", `{"seq":1}`, nil); code != 200 { // an unread mark
				t.Fatalf("read %s: %d", psid, code)
			}
		}
	}
	for _, act := range []string{"claim", "note"} {
		if code := anna.do("POST", "/api/conversations/100/"+gone+"/"+act, `{"text":"VIP"}`, nil); code != 200 {
			t.Fatalf("%s: %d", act, code)
		}
	}

	// An open page: its stream says "update" at once, then on a change.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.srv.URL+"/api/events", nil)
	stream, err := ben.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	events := make(chan string, 16)
	go func() { // ends with the stream: f.stop closes it
		defer close(events)
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events <- ev
			}
		}
	}()
	nextEvent := func() string {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(5 * time.Second): // a bound on failure, not a wait for success
			t.Fatal("no event on the open page's stream")
			return ""
		}
	}
	nextEvent()

	if code := f.erasure("dlv_9", gone); code != http.StatusNoContent {
		t.Fatalf("erasure notice: %d, want 204", code)
	}
	if ev := nextEvent(); ev != "update" {
		t.Errorf("open pages were told %q, want update", ev)
	}
	if code := f.erasure("dlv_10", gone); code != http.StatusNoContent {
		t.Errorf("a second notice for the same person: %d, want 204", code)
	}
	for _, bad := range []string{"", "not-a-psid"} {
		if code := f.erasure("dlv_bad", bad); code != http.StatusBadRequest {
			t.Errorf("notice naming %q: %d, want 400", bad, code)
		}
	}
	if l := anna.list(); len(l) != 1 || l[0].PSID != kept || l[0].Name != "Ada Okafor" {
		t.Errorf("listed after the erasure: %+v", l)
	}
	if code := anna.do("GET", "/api/conversations/100/"+gone, "", nil); code != http.StatusNotFound {
		t.Errorf("the erased conversation: %d, want 404", code)
	}

	// The file itself: no key or value names the erased person; the
	// other person's records are all there.
	f.stop()
	db, err := bolt.Open(f.data, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	found := map[string][]string{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				for _, psid := range []string{gone, kept} {
					if strings.Contains(string(k), psid) || strings.Contains(string(v), psid) {
						found[psid] = append(found[psid], string(name))
					}
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found[gone]) != 0 {
		t.Errorf("the erased person is still in buckets %q", found[gone])
	}
	if want := "[conversations messages messages reads reads]"; fmt.Sprint(found[kept]) != want {
		t.Errorf("the other person is in buckets %q, want %s", found[kept], want)
	}
}
