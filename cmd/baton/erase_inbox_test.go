package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A person erased through the admin API (baton erase) is gone from the
// inbox too: Baton's erasure notice reaches it through the outbox, the
// conversation leaves the agents' list, and the inbox's own file holds
// nothing of the person; another person's conversation stays.
func TestEraseReachesTheInbox(t *testing.T) {
	d := startTestDemo(t)
	const gone, kept = "7000000000000031", "7000000000000032"
	for _, psid := range []string{gone, kept} {
		d.escalate(t, psid)
	}
	anna := d.signIn(t, "anna")
	listed := func() []string {
		var l struct{ Conversations []struct{ PSID string } }
		anna.call(t, http.MethodGet, d.inboxURL+"/api/conversations", "", &l)
		var out []string
		for _, c := range l.Conversations {
			out = append(out, c.PSID)
		}
		return out
	}
	eventually(t, "both conversations in the inbox", func() bool { return len(listed()) == 2 })
	anna.call(t, http.MethodPost, fmt.Sprintf("%s/api/conversations/%s/%s/note", d.inboxURL, demoPage, gone), `{"text":"lives at 1 Main St"}`, nil)

	t.Setenv("BATON_ADMIN_TOKEN", d.adminToken)
	var out, errb strings.Builder
	if code := run(t.Context(), []string{"erase", "-admin", d.adminURL, demoPage, gone}, &out, &errb); code != 0 {
		t.Fatalf("baton erase: exit %d: %s", code, errb.String())
	}
	eventually(t, "the erased conversation to leave the inbox", func() bool {
		l := listed()
		return len(l) == 1 && l[0] == kept
	})
	resp, err := anna.client.Get(fmt.Sprintf("%s/api/conversations/%s/%s", d.inboxURL, demoPage, gone))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the erased conversation: %d, want 404", resp.StatusCode)
	}

	// The inbox's file, read while the inbox is stopped (bbolt's lock).
	if err := d.stopInboxNow(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(d.inboxOpt.Data, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				for _, psid := range []string{gone, kept} {
					if strings.Contains(string(k)+string(v), psid) {
						found[psid]++
					}
				}
				return nil
			})
		})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if found[gone] != 0 || found[kept] == 0 {
		t.Errorf("records naming the erased person: %d (want 0), the other person: %d (want some)", found[gone], found[kept])
	}
	if err := d.startInbox(nil); err != nil { // for the demo's stop
		t.Fatal(err)
	}
}
