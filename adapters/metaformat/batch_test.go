package metaformat

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
)

func TestDeliverBatchOneEventPerEntryOneChannelPerRequest(t *testing.T) {
	secret := "bot-secret"
	type request struct {
		channels []string // of each entry
		psids    []string
		retried  bool
	}
	var mu sync.Mutex
	var reqs []request
	fail := map[string]bool{} // a request whose first psid is here answers 503
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if err := messenger.Verify(r.Header, raw, []byte(secret), messenger.VerifyOptions{}); err != nil {
			t.Errorf("sha256: %v", err)
		}
		env, err := messenger.ParseEnvelope(raw)
		if err != nil {
			t.Errorf("parse %s: %v", raw, err)
			return
		}
		var rq request
		for _, en := range env.Entry {
			if n := len(en.Messaging) + len(en.Standby); n != 1 {
				t.Errorf("entry with %d events: bottender reads only the first", n)
			}
			env := messenger.Envelope{Entry: []messenger.Entry{en}}
			env.Each(func(_ *messenger.Entry, c messenger.Channel, ev *messenger.Event) {
				rq.channels = append(rq.channels, string(c))
				rq.psids = append(rq.psids, string(ev.Sender.ID))
			})
		}
		rq.retried = r.Header.Get(HeaderRetried) == "1"
		mu.Lock()
		reqs = append(reqs, rq)
		mu.Unlock()
		if fail[rq.psids[0]] {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	a, err := New(adapters.Settings{URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	d := func(psid, ch string, retried bool) *adapters.Delivery {
		del := &adapters.Delivery{ID: "dlv_" + psid, PageID: "1", PSID: psid, Channel: ch,
			Event: json.RawMessage(fmt.Sprintf(`{"sender":{"id":%q},"recipient":{"id":"1"},"timestamp":1,"message":{"mid":"m%s","text":"hi"}}`, psid, psid))}
		if retried {
			del.Retried = &adapters.Retried{DeadAt: time.Unix(1, 0)}
		}
		return del
	}
	ds := []*adapters.Delivery{d("1", "messaging", false), d("2", "standby", false), d("3", "messaging", false), d("4", "messaging", true), d("5", "standby", false)}
	fail["2"] = true
	outs := a.(*Adapter).DeliverBatch(context.Background(), ds)

	want := []request{
		{channels: []string{"messaging", "messaging"}, psids: []string{"1", "3"}},
		{channels: []string{"standby", "standby"}, psids: []string{"2", "5"}},
		{channels: []string{"messaging"}, psids: []string{"4"}, retried: true},
	}
	if fmt.Sprint(reqs) != fmt.Sprint(want) {
		t.Fatalf("requests\n got %+v\nwant %+v", reqs, want)
	}
	for i, wantErr := range []bool{false, true, false, false, true} {
		if o := outs[i]; (o.Err != nil) != wantErr || (wantErr && !adapters.Retryable(o.Err)) {
			t.Errorf("%s: outcome %+v, want failed=%v (the standby request answered 503)", ds[i].ID, o, wantErr)
		}
	}
}
