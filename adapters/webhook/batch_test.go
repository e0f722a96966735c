package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/batonhq/baton/adapters"
)

func batchOf(ids ...string) []*adapters.Delivery {
	var ds []*adapters.Delivery
	for i, id := range ids {
		ds = append(ds, &adapters.Delivery{ID: id, App: "bot", PageID: "1", PSID: string(rune('a' + i)), Channel: "messaging", Kind: "message",
			Attempt: 1, Event: json.RawMessage(`{"message":{"text":"<hi & bye>"}}`)})
	}
	return ds
}

func TestDeliverBatch(t *testing.T) {
	type want struct {
		delivered bool
		retry     bool
		status    int
		actions   int
	}
	ok := want{delivered: true, status: 200}
	for _, tt := range []struct {
		name   string
		status int
		answer string
		want   []want
	}{
		{"plain 200: all delivered, no actions", 200, ``, []want{ok, ok, ok}},
		{"202 with another body", 202, `EVENT_RECEIVED`, []want{{delivered: true, status: 202}, {delivered: true, status: 202}, {delivered: true, status: 202}}},
		{"actions for one", 200, `{"results":[{"id":"dlv_2","actions":[{"type":"pass","to":"page-inbox"}]}]}`,
			[]want{ok, {delivered: true, status: 200, actions: 1}, ok}},
		{"partial: one busy, one refused, unknown id ignored", 200,
			`{"results":[{"id":"dlv_1","status":503,"error":"busy"},{"id":"dlv_3","status":400,"error":"bad"},{"id":"dlv_9","status":500}]}`,
			[]want{{retry: true, status: 503}, ok, {status: 400}}},
		{"a 2xx status per result is delivered", 200, `{"results":[{"id":"dlv_1","status":200}]}`, []want{ok, ok, ok}},
		{"the batch refused", 400, `nope`, []want{{status: 400}, {status: 400}, {status: 400}}},
		{"the batch busy", 503, ``, []want{{retry: true, status: 503}, {retry: true, status: 503}, {retry: true, status: 503}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := []byte("hook-secret")
			var got struct {
				Batch []adapters.Delivery `json:"batch"`
			}
			var hdr http.Header
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if err := Verify(key, r.Header, body, time.Now(), time.Minute); err != nil {
					t.Errorf("verify: %v", err)
				}
				hdr = r.Header
				if err := json.Unmarshal(body, &got); err != nil {
					t.Errorf("batch body %s: %v", body, err)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.answer)
			}))
			defer srv.Close()
			a, _ := New(adapters.Settings{URL: srv.URL, Secret: string(key), Timeout: time.Second})
			ds := batchOf("dlv_1", "dlv_2", "dlv_3")
			outs := a.(*Adapter).DeliverBatch(context.Background(), ds)
			if len(got.Batch) != 3 || got.Batch[0].ID != "dlv_1" || got.Batch[2].ID != "dlv_3" || string(got.Batch[1].Event) != `{"message":{"text":"<hi & bye>"}}` {
				t.Fatalf("bot got %+v", got.Batch)
			}
			if id := hdr.Get("webhook-id"); id != BatchID([]string{"dlv_1", "dlv_2", "dlv_3"}) || id == BatchID([]string{"dlv_1", "dlv_2"}) {
				t.Errorf("webhook-id %q", id)
			}
			for i, w := range tt.want {
				o := outs[i]
				if (o.Err == nil) != w.delivered || o.Result.Status != w.status || len(o.Result.Actions) != w.actions {
					t.Errorf("%s: outcome %+v, want %+v", ds[i].ID, o, w)
				}
				if o.Err != nil && adapters.Retryable(o.Err) != w.retry {
					t.Errorf("%s: retryable %v, want %v (%v)", ds[i].ID, adapters.Retryable(o.Err), w.retry, o.Err)
				}
			}
		})
	}
}

func TestDeliverBatchUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	a, _ := New(adapters.Settings{URL: srv.URL, Secret: "s", Timeout: time.Second})
	outs := a.(*Adapter).DeliverBatch(context.Background(), batchOf("dlv_1", "dlv_2"))
	for _, o := range outs {
		var ae *adapters.Error
		if o.Err == nil || errors.As(o.Err, &ae) || !adapters.Retryable(o.Err) {
			t.Fatalf("outcome %+v: want a retried transport error", o)
		}
	}
}

// joinEnvelopes is the batch encodeBatch writes, made the plain way:
// each envelope encoded on its own and copied into a growing buffer.
func joinEnvelopes(ds []*adapters.Delivery) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"batch":[`)
	for i, d := range ds {
		env, err := encode(d)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(env)
	}
	b.WriteString(`]}`)
	return b.Bytes(), nil
}

func benchBatch(n int) []*adapters.Delivery {
	ds := make([]*adapters.Delivery, n)
	for i := range ds {
		ds[i] = benchDelivery()
		ds[i].ID = fmt.Sprint("dlv_", i)
	}
	return ds
}

func TestEncodeBatchIsTheEnvelopesJoined(t *testing.T) {
	for _, n := range []int{1, 2, 15} {
		ds := benchBatch(n)
		ds[0].Retried = &adapters.Retried{DeadAt: time.Unix(1795557600, 0).UTC()}
		got, err := encodeBatch(ds)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := joinEnvelopes(ds)
		if !bytes.Equal(got, want) {
			t.Errorf("%d envelopes:\n got %s\nwant %s", n, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("%d envelopes: not JSON", n)
		}
	}
}

// BenchmarkEncodeBatch: a batch of 15 (the mean at max load), in one
// buffer of its size against the envelopes joined.
func BenchmarkEncodeBatch(b *testing.B) {
	ds := benchBatch(15)
	for _, c := range []struct {
		name string
		fn   func([]*adapters.Delivery) ([]byte, error)
	}{{"joined", joinEnvelopes}, {"one-buffer", encodeBatch}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fn(ds); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
