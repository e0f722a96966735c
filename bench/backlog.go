package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/batonhq/baton/bench/lab"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// backlogDown is how long the bot stays down once Baton is ready: long
// enough for its lanes to fail and wait, as a real outage leaves them.
const backlogDown = 5 * time.Second

// backlogLive is how many threads get one more event through the webhook
// while the bot is down and the backlog loads: it must reach the bot
// after the rest of its thread.
const backlogLive = 100

// backlog fills a store with c.Backlog deliveries pending for a bot that
// is down (it answers 503), spread over c.Threads threads, starts Baton on it (its own
// process) and measures the time to ready and its memory; then, with the
// bot still down, sends one more event on some threads; then brings the
// bot up and measures the delivery rate until everything arrived, and
// that order per thread held and nothing was lost or repeated under
// another id.
func backlog(ctx context.Context, c Config) error {
	l, err := lab.New(c.Executable, "baton-backlog-")
	if err != nil {
		return err
	}
	defer l.Close()
	pages := pageIDs(c.Pages)
	threads := max(1, min(c.Threads, c.Backlog))
	data := filepath.Join(l.Dir, "baton.db")
	fillStart := time.Now()
	if err := fillBacklog(ctx, data, pages, threads, c.Backlog, c.TextBytes); err != nil {
		return err
	}
	fi, _ := os.Stat(data)
	fmt.Fprintf(c.Stderr, "filled %d pending deliveries on %d threads in %s (%d MiB)\n", c.Backlog, threads, time.Since(fillStart).Round(time.Second), fi.Size()>>20)
	// The bot answers 503 until it is up. (Refusing connections on a port
	// nobody listens on would be as good, but on a shared machine another
	// process may take the port meanwhile and answer for the bot.)
	rec := newBacklogRecorder(threads, c.Backlog+min(backlogLive, threads))
	botURL, stopBot, err := lab.ServeLocal(rec)
	if err != nil {
		return err
	}
	defer stopBot()
	cfgPath, pub, adm, err := lab.WriteConfig(l.Dir, data, pages, lab.Target{BotURL: botURL, Conns: c.Connections, MaxAttempts: 1000})
	if err != nil {
		return err
	}
	r := backlogResult{pending: c.Backlog, threads: threads, size: fi.Size(), conns: c.Connections}
	start := time.Now()
	cmd, err := l.Serve(ctx, cfgPath, adm)
	if err != nil {
		return err
	}
	defer lab.Stop(cmd)
	r.ready = time.Since(start)
	r.atReady, _ = lab.ReadProc(cmd.Process.Pid)

	live := min(backlogLive, threads)
	if err := sendLive(ctx, "http://"+pub+"/webhooks/bench-bot", pages, threads, c.Backlog, live, c.TextBytes); err != nil {
		return err
	}
	time.Sleep(backlogDown)
	r.down, _ = lab.ReadProc(cmd.Process.Pid)
	fmt.Fprintf(c.Stderr, "ready in %s; bot down for %s, then up\n", r.ready.Round(time.Millisecond), backlogDown)

	rec.up.Store(true)
	up := time.Now()
	last, lastProgress := 0, time.Now()
	for n := rec.distinct(); n < c.Backlog+live && time.Since(lastProgress) < time.Minute && ctx.Err() == nil; n = rec.distinct() {
		if n != last {
			last, lastProgress = n, time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.drain = time.Since(up)
	r.after, _ = lab.ReadProc(cmd.Process.Pid)
	r.delivered, r.dups, r.order, r.live = rec.distinct(), rec.dups, rec.outOfOrder, live
	if r.delivered < c.Backlog+live {
		r.left = leftOver(ctx, adm)
		if b, err := os.ReadFile(filepath.Join(l.Dir, "baton.log")); err == nil {
			fmt.Fprintf(c.Stderr, "baton.log (last 4 KB):\n%s\n", b[max(0, len(b)-4096):])
		}
	}
	r.report(c.Stdout)
	return nil
}

// leftOver describes, from Baton's admin API, what did not reach the bot.
func leftOver(ctx context.Context, adm string) string {
	var out strings.Builder
	for _, status := range []string{"pending", "dead"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adm+"/admin/deliveries?status="+status, nil)
		req.Header.Set("Authorization", "Bearer "+lab.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		var list struct {
			Deliveries []struct {
				ID        uint64 `json:"id"`
				PSID      string `json:"psid"`
				Attempts  int    `json:"attempts"`
				LastError string `json:"last_error"`
			} `json:"deliveries"`
		}
		err = jsonv2.UnmarshalRead(resp.Body, &list)
		resp.Body.Close()
		if err != nil {
			return err.Error()
		}
		fmt.Fprintf(&out, "%s %d", status, len(list.Deliveries))
		for i, d := range list.Deliveries[:min(3, len(list.Deliveries))] {
			fmt.Fprintf(&out, "%s id %d psid %s attempts %d %q", map[bool]string{true: ": ", false: "; "}[i == 0], d.ID, d.PSID, d.Attempts, d.LastError)
		}
		out.WriteString(". ")
	}
	return out.String()
}

// fillBacklog creates a bbolt file at path holding the backlog.
func fillBacklog(ctx context.Context, path string, pages []string, threads, n, textBytes int) error {
	db, err := bolt.Open(path, bolt.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return FillOutbox(ctx, db, pages, "bench-bot", threads, n, 10000, textBytes, time.Now())
}

// FillOutbox journals n message events for app, round-robin over threads
// threads of the pages, and enqueues a delivery of each sharing the
// journal's bytes, as ingress does, in transactions of batch: the outbox
// of a bot that was down while they came. Thread t's k-th event (from 1)
// says "seq=k" in its text, as the load generator's do.
func FillOutbox(ctx context.Context, s store.Store, pages []string, app string, threads, n, batch, textBytes int, now time.Time) error {
	text := strings.Repeat("x", max(0, textBytes))
	for start := 0; start < n; start += batch {
		end := min(n, start+batch)
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := start; i < end; i++ {
				t := i % threads
				page, psid := pages[t%len(pages)], PSID(t)
				ev := messageEvent(page, psid, fmt.Sprintf("m_backlog_%d", i), i/threads+1, now, text)
				j := &store.JournalEntry{ReceivedAt: now, App: app, Page: page, Channel: "messaging", Event: ev}
				if err := tx.AppendJournal(j); err != nil {
					return err
				}
				d := &store.Delivery{App: app, Page: page, PSID: psid, Channel: "messaging", Kind: "message", Event: ev,
					JournalSeq: j.Seq, SharesEvent: true, State: "primary", Owner: lab.BotAppID, CreatedAt: now, NextAttempt: now}
				if err := tx.Enqueue(d); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("fill outbox %d-%d: %w", start, end, err)
		}
	}
	return nil
}

func messageEvent(page, psid, mid string, seq int, now time.Time, text string) []byte {
	return fmt.Appendf(nil, `{"sender":{"id":"%s"},"recipient":{"id":"%s"},"timestamp":%d,"message":{"mid":"%s","text":"seq=%d sent=%d %s"}}`,
		psid, page, now.UnixMilli(), mid, seq, now.UnixNano(), text)
}

// sendLive sends the next event of each of the first live threads through
// Baton's webhook, signed as Meta does.
func sendLive(ctx context.Context, url string, pages []string, threads, n, live, textBytes int) error {
	client := &http.Client{Timeout: 30 * time.Second}
	text := strings.Repeat("x", max(0, textBytes))
	for t := range live {
		seq := n/threads + 1
		if t < n%threads {
			seq++
		}
		page := pages[t%len(pages)]
		now := time.Now()
		ev := messageEvent(page, PSID(t), fmt.Sprintf("m_live_%d", t), seq, now, text)
		body := fmt.Appendf(nil, `{"object":"page","entry":[{"id":"%s","time":%d,"messaging":[%s]}]}`, page, now.UnixMilli(), ev)
		if !post(ctx, client, url, []byte(lab.AppSecret), body) {
			return fmt.Errorf("live event on thread %d not acknowledged", t)
		}
	}
	return nil
}

// backlogRecorder is a bot that counts a backlog as it arrives: distinct
// delivery ids (a bitmap, so a million cost 125 KB), repeats of an id,
// and order per thread, from the "seq=" of each message.
type backlogRecorder struct {
	up         atomic.Bool // until then it answers 503, as a bot that is down
	mu         sync.Mutex
	seen       []uint64 // bit per delivery id
	n          int
	dups       int
	outOfOrder int
	lastSeq    []int32 // by thread
}

func newBacklogRecorder(threads, expect int) *backlogRecorder {
	return &backlogRecorder{seen: make([]uint64, expect/64+1), lastSeq: make([]int32, threads)}
}

func (rc *backlogRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !rc.up.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var d struct {
		ID    string         `json:"id"`
		PSID  string         `json:"psid"`
		Event jsontext.Value `json:"event"`
	}
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		Message struct {
			Text string `json:"text"`
		} `json:"message"`
	}
	if jsonv2.Unmarshal(body, &d) != nil || jsonv2.Unmarshal(d.Event, &ev) != nil {
		http.Error(w, "bad delivery", http.StatusBadRequest)
		return
	}
	id, err := strconv.ParseUint(strings.TrimPrefix(d.ID, "dlv_"), 10, 64)
	t, terr := strconv.Atoi(d.PSID)
	t -= 7_000_000_000_000_000
	if err != nil || terr != nil || t < 0 || t >= len(rc.lastSeq) {
		http.Error(w, "not a backlog delivery", http.StatusBadRequest)
		return
	}
	seq, _ := parseText(ev.Message.Text)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for int(id/64) >= len(rc.seen) {
		rc.seen = append(rc.seen, 0)
	}
	if rc.seen[id/64]&(1<<(id%64)) != 0 {
		rc.dups++
	} else {
		rc.seen[id/64] |= 1 << (id % 64)
		rc.n++
		if int32(seq) <= rc.lastSeq[t] {
			rc.outOfOrder++
		}
		rc.lastSeq[t] = int32(seq)
	}
	w.WriteHeader(http.StatusOK)
}

// distinct counts the delivery ids received.
func (rc *backlogRecorder) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n
}

// backlogResult is what a backlog run measured.
type backlogResult struct {
	pending, threads, conns int
	size                    int64
	ready                   time.Duration
	atReady, down, after    lab.ProcStats
	live                    int
	drain                   time.Duration
	delivered, dups, order  int
	left                    string // what Baton still holds, when something is missing
}

func (r backlogResult) report(w io.Writer) {
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	expect := r.pending + r.live
	fmt.Fprintf(w, "\nbacklog: %d deliveries pending on %d threads for a bot that is down (file %d MiB); baton serve as its own process\n", r.pending, r.threads, r.size>>20)
	fmt.Fprintf(w, "  ready (/readyz 200) in %.1f ms\n", float64(r.ready)/1e6)
	fmt.Fprintf(w, "  RSS at ready %.1f MiB (private %.1f MiB); after %s down %.1f MiB (private %.1f MiB)\n",
		mib(r.atReady.RSS), mib(r.atReady.Anon), backlogDown, mib(r.down.RSS), mib(r.down.Anon))
	fmt.Fprintf(w, "  bot up: %d of %d delivered (%d sent live while it was down) in %.1f s = %.0f deliveries/s at concurrency %d\n",
		r.delivered, expect, r.live, r.drain.Seconds(), float64(r.delivered)/r.drain.Seconds(), r.conns)
	fmt.Fprintf(w, "  peak RSS %.1f MiB; after the drain %.1f MiB (private %.1f MiB, the rest the data file's mapped pages)\n",
		mib(r.after.MaxRS), mib(r.after.RSS), mib(r.after.Anon))
	fmt.Fprintf(w, "  lost %d, repeats under the same id %d, out of order %d\n", expect-r.delivered, r.dups, r.order)
	if r.left != "" {
		fmt.Fprintf(w, "  left in Baton: %s\n", r.left)
	}
}
