package bench

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/messenger"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Recorder is a bot that records what reaches it: first arrival per
// message, delivery ids seen more than once, and order per thread. It
// reads Baton's envelope, its batch form and Meta's format (what the
// generator sends direct, and what the glue and Baton's messenger adapter
// forward), and when given the keys verifies each request as a bot would.
type Recorder struct {
	mu         sync.Mutex
	first      map[string]time.Duration // mid -> end-to-end latency
	ids        map[string]string        // mid -> delivery id ("" in Meta's format)
	lastSeq    map[string]int           // psid -> last seq
	last       time.Time                // the latest first arrival
	Duplicates int                      // repeats of a delivery, same id
	Mismatched int                      // repeats under another delivery id
	OutOfOrder int
	Requests   int           // requests that carried a message
	Delay      time.Duration // extra time the bot takes per request
	// HookKey verifies Baton's envelope (Standard Webhooks), MetaSecret
	// Meta's format (X-Hub-Signature-256); nil verifies nothing.
	HookKey, MetaSecret []byte
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{first: map[string]time.Duration{}, ids: map[string]string{}, lastSeq: map[string]int{}}
}

// delivery is Baton's envelope, as far as the recorder reads it.
type delivery struct {
	ID    string         `json:"id"`
	PSID  string         `json:"psid"`
	Kind  string         `json:"kind"`
	Event jsontext.Value `json:"event"`
}

// ServeHTTP records one request. It shares the machine with what it
// measures, so it reads no more than it needs: encoding/json/v2 (one pass)
// and no fmt.
func (rc *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		delivery
		Batch []delivery `json:"batch"`
		Entry []struct {
			Messaging []jsontext.Value `json:"messaging"`
		} `json:"entry"`
	}
	raw, _ := io.ReadAll(r.Body)
	if !rc.verified(r.Header, raw) {
		http.Error(w, "signature", http.StatusUnauthorized)
		return
	}
	if jsonv2.Unmarshal(raw, &body) != nil {
		http.Error(w, "bad delivery", http.StatusBadRequest)
		return
	}
	if rc.Delay > 0 {
		time.Sleep(rc.Delay) // the bot's own work
	}
	now := time.Now()
	rc.mu.Lock()
	rc.Requests++
	rc.mu.Unlock()
	switch {
	case body.Entry != nil: // Meta's format
		for _, en := range body.Entry {
			for _, ev := range en.Messaging {
				rc.record("", ev, now)
			}
		}
	case body.Batch != nil:
		for i := range body.Batch {
			if body.Batch[i].Kind == "message" {
				rc.record(body.Batch[i].ID, body.Batch[i].Event, now)
			}
		}
	case body.Kind == "message":
		rc.record(body.ID, body.Event, now)
	}
	w.WriteHeader(http.StatusOK)
}

func (rc *Recorder) verified(h http.Header, body []byte) bool {
	switch {
	case h.Get(messenger.HeaderSignature256) != "":
		return rc.MetaSecret == nil || messenger.Verify(h, body, rc.MetaSecret, messenger.VerifyOptions{}) == nil
	case rc.HookKey != nil:
		return webhook.Verify(rc.HookKey, h, body, time.Now(), time.Minute) == nil
	}
	return rc.MetaSecret == nil
}

// record notes one message event delivered under id.
func (rc *Recorder) record(id string, event jsontext.Value, now time.Time) {
	var ev struct {
		Sender struct {
			ID string `json:"id"`
		} `json:"sender"`
		Message struct {
			Mid  string `json:"mid"`
			Text string `json:"text"`
		} `json:"message"`
	}
	if jsonv2.Unmarshal(event, &ev) != nil || ev.Message.Mid == "" {
		return
	}
	seq, sentNs := parseText(ev.Message.Text)
	psid, mid := ev.Sender.ID, ev.Message.Mid
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if prev, seen := rc.ids[mid]; seen {
		if prev == id {
			rc.Duplicates++
		} else {
			rc.Mismatched++
		}
		return
	}
	rc.ids[mid] = id
	rc.first[mid] = now.Sub(time.Unix(0, sentNs))
	rc.last = now
	if seq <= rc.lastSeq[psid] {
		rc.OutOfOrder++
	}
	rc.lastSeq[psid] = seq
}

// parseText reads "seq=N sent=NS ..." as the generator writes it.
func parseText(text string) (seq int, sentNs int64) {
	f := strings.Fields(text)
	for _, kv := range f[:min(2, len(f))] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "seq":
			seq, _ = strconv.Atoi(v)
		case "sent":
			sentNs, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return seq, sentNs
}

// Missing counts acknowledged messages the bot has not received.
func (rc *Recorder) Missing(acked map[string]bool) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for mid := range acked {
		if _, ok := rc.first[mid]; !ok {
			n++
		}
	}
	return n
}

// Delivered counts the acknowledged messages the bot received, and
// returns when the latest of all first arrivals was.
func (rc *Recorder) Delivered(acked map[string]bool) (int, time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for mid := range acked {
		if _, ok := rc.first[mid]; ok {
			n++
		}
	}
	return n, rc.last
}

// EndToEnd summarises send-to-bot latency of the acknowledged messages.
func (rc *Recorder) EndToEnd(acked map[string]bool) Latencies {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var d []time.Duration
	for mid := range acked {
		if l, ok := rc.first[mid]; ok {
			d = append(d, l)
		}
	}
	return Summarise(d)
}

// Reset forgets everything, for the next run.
func (rc *Recorder) Reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.first, rc.ids, rc.lastSeq, rc.last = map[string]time.Duration{}, map[string]string{}, map[string]int{}, time.Time{}
	rc.Duplicates, rc.Mismatched, rc.OutOfOrder, rc.Requests = 0, 0, 0, 0
}
