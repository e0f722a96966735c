package bench

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Recorder is a bot that records what Baton delivers: first arrival per
// message, delivery ids seen more than once, and order per thread.
type Recorder struct {
	mu         sync.Mutex
	first      map[string]time.Duration // mid -> end-to-end latency
	ids        map[string]string        // mid -> delivery id
	lastSeq    map[string]int           // psid -> last seq
	Duplicates int                      // repeats of a delivery, same id
	Mismatched int                      // repeats under another delivery id
	OutOfOrder int
	Delay      time.Duration // extra time the bot takes per request
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{first: map[string]time.Duration{}, ids: map[string]string{}, lastSeq: map[string]int{}}
}

// ServeHTTP records one delivery. It shares the machine with what it
// measures, so it reads no more than it needs: encoding/json/v2 (one pass)
// and no fmt.
func (rc *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var d struct {
		ID    string         `json:"id"`
		PSID  string         `json:"psid"`
		Kind  string         `json:"kind"`
		Event jsontext.Value `json:"event"`
	}
	body, _ := io.ReadAll(r.Body)
	if jsonv2.Unmarshal(body, &d) != nil {
		http.Error(w, "bad delivery", http.StatusBadRequest)
		return
	}
	if rc.Delay > 0 {
		time.Sleep(rc.Delay) // the bot's own work
	}
	if d.Kind == "message" {
		var ev struct {
			Message struct {
				Mid  string `json:"mid"`
				Text string `json:"text"`
			} `json:"message"`
		}
		_ = jsonv2.Unmarshal(d.Event, &ev)
		seq, sentNs := parseText(ev.Message.Text)
		rc.mu.Lock()
		if id, seen := rc.ids[ev.Message.Mid]; seen {
			if id == d.ID {
				rc.Duplicates++
			} else {
				rc.Mismatched++
			}
		} else {
			rc.ids[ev.Message.Mid] = d.ID
			rc.first[ev.Message.Mid] = time.Since(time.Unix(0, sentNs))
			if seq <= rc.lastSeq[d.PSID] {
				rc.OutOfOrder++
			}
			rc.lastSeq[d.PSID] = seq
		}
		rc.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
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
	rc.first, rc.ids, rc.lastSeq = map[string]time.Duration{}, map[string]string{}, map[string]int{}
	rc.Duplicates, rc.Mismatched, rc.OutOfOrder = 0, 0, 0
}
