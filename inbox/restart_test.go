package inbox

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// listingBaton is Baton's thread listing and paged transcripts in front
// of fakeBaton: threads are what the inbox owns on page 100, entries
// each conversation's transcript, oldest first, paged as Baton pages it
// (the newest limit before the cursor).
type listingBaton struct {
	*fakeBaton
	mu      sync.Mutex
	threads []string            // PSIDs the inbox owns
	entries map[string][]string // PSID -> JSON entries
}

func (b *listingBaton) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	parts := strings.Split(r.URL.Path, "/")
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case r.URL.Path == "/v1/threads" && q.Get("page") == "100" && q.Get("owner") == "me":
		b.fakeBaton.ServeHTTP(httptest.NewRecorder(), r) // recorded
		from, _ := strconv.Atoi(q.Get("cursor"))
		n, _ := strconv.Atoi(q.Get("limit"))
		to, next := min(from+n, len(b.threads)), ""
		if to < len(b.threads) {
			next = strconv.Itoa(to)
		}
		var out []string
		for _, psid := range b.threads[from:to] {
			out = append(out, fmt.Sprintf(`{"page_id":"100","psid":%q,"state":"secondary","owner":"inbox","hold_until":null}`, psid))
		}
		fmt.Fprintf(w, `{"threads":[%s],"next_cursor":%q}`, strings.Join(out, ","), next)
	case len(parts) == 6 && parts[5] == "transcript" && b.entries[parts[4]] != nil:
		b.fakeBaton.ServeHTTP(httptest.NewRecorder(), r)
		es := b.entries[parts[4]]
		end, err := strconv.Atoi(q.Get("cursor"))
		if err != nil {
			end = len(es)
		}
		n, _ := strconv.Atoi(q.Get("limit"))
		if n < 1 || n > 500 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		start, next := max(0, end-n), ""
		if start > 0 {
			next = strconv.Itoa(start)
		}
		fmt.Fprintf(w, `{"entries":[%s],"next_cursor":%q}`, strings.Join(es[start:end], ","), next)
	default:
		b.fakeBaton.ServeHTTP(w, r)
	}
}

func (b *listingBaton) count(prefix string) int {
	n := 0
	for _, c := range b.Calls() {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func newListingFixture(t *testing.T) (*fixture, *listingBaton) {
	t.Helper()
	lb := &listingBaton{fakeBaton: &fakeBaton{}, entries: map[string][]string{}}
	f := &fixture{t: t, baton: lb.fakeBaton, data: filepath.Join(t.TempDir(), "inbox.db")}
	bs := httptest.NewServer(lb)
	t.Cleanup(bs.Close)
	opt := options(bs.URL, f.data, mustHash(t))
	opt.Pages = []string{"100"}
	f.start(opt)
	return f, lb
}

func entry(seq int, at time.Time, kind, rest string) string {
	return fmt.Sprintf(`{"seq":%d,"at":%q,"kind":%q,%s}`, seq, at.Format(time.RFC3339Nano), kind, rest)
}

// The inbox's file is gone while it holds two conversations: at start it
// lists what it owns at Baton (two listing pages) and has them back,
// assigned, with what was said and the handover; a second start adds
// nothing twice.
func TestInboxFindsItsConversationsWhenItsDataIsLost(t *testing.T) {
	f, lb := newListingFixture(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	f.deliver("dlv_1", "standby", "faq-bot", msg("m_1", "hi", t0.UnixMilli()))
	f.deliver("dlv_2", "messaging", "inbox", pass("asked for a human", t0.Add(2*time.Second).UnixMilli()))
	if n := len(f.signIn("anna").list()); n != 1 {
		t.Fatalf("before: %d conversations", n)
	}
	opt := f.in.opt
	f.stop()
	if err := os.Remove(f.data); err != nil {
		t.Fatal(err)
	}

	lb.mu.Lock()
	lb.threads = make([]string, 0, 101)
	for i := range 100 { // the first listing page: conversations that came and went
		lb.threads = append(lb.threads, fmt.Sprintf("8%03d", i))
	}
	lb.threads = append(lb.threads, "7123")
	lb.entries["7123"] = []string{
		entry(1, t0, "message", `"from":"7123","text":"hi","mid":"m_1"`),
		entry(2, t0.Add(time.Second), "echo", `"app":"faq-bot","text":"Hi! I'm the bot","mid":"m_2"`),
		entry(3, t0.Add(2*time.Second), "handover", `"from":"faq-bot","to":"inbox","event":"pass_thread_control","metadata":"asked for a human"`),
		entry(4, t0.Add(3*time.Second), "message", `"from":"7123","text":"still there?","mid":"m_3"`),
	}
	lb.mu.Unlock()
	f.start(opt)
	f.in.rebuild(t.Context())

	anna := f.signIn("anna")
	list := anna.list()
	if len(list) != 101 {
		t.Fatalf("after losing the data: %d conversations, want 101", len(list))
	}
	d := anna.detail()
	c := d.Conversation
	if !c.Assigned || c.Owner != "inbox" || c.Why != "asked for a human" || !c.HandedAt.Equal(t0.Add(2*time.Second)) || c.Found.IsZero() ||
		c.Last != "still there?" || c.LastFrom != FromPerson {
		t.Fatalf("conversation %+v", c)
	}
	want := "person: hi|bot: Hi! I'm the bot|event: handed to the inbox: asked for a human|person: still there?"
	if s := said(d.Messages); s != want {
		t.Errorf("messages = %q\nwant       %q", s, want)
	}
	if n := lb.count("GET /v1/threads?"); n != 2 {
		t.Errorf("%d listing calls, want 2 (two pages)", n)
	}

	// Another start: found already, nothing twice.
	opt = f.in.opt
	f.stop()
	f.start(opt)
	f.in.rebuild(t.Context())
	anna.f = f
	if s := said(anna.detail().Messages); s != want {
		t.Errorf("after a second start: %q", s)
	}
}

// A conversation longer than a transcript page is read back whole, page
// by page, until what the inbox has, or up to transcriptCap entries.
func TestInboxRebuildsLongConversations(t *testing.T) {
	for _, c := range []struct {
		name        string
		entries     int
		known       int // the inbox already has m_1 .. m_known
		wantCalls   int
		wantFromBat int // messages the transcript adds
	}{
		{"450 entries, none known", 450, 0, 3, 450},
		{"450 entries, the older half known", 450, 225, 2, 225},
		{"past the cap", transcriptCap + 300, 0, transcriptCap / transcriptPage, transcriptCap},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, lb := newListingFixture(t)
			t0 := time.Now().Add(-24 * time.Hour)
			for i := 1; i <= c.known; i++ {
				f.deliver(fmt.Sprintf("dlv_%d", i), "standby", "faq-bot", msg(fmt.Sprintf("m_%d", i), fmt.Sprint("line ", i), t0.Add(time.Duration(i)*time.Second).UnixMilli()))
			}
			f.deliver("dlv_pass", "messaging", "inbox", pass("asked", t0.UnixMilli()))
			es := make([]string, c.entries)
			for i := range es {
				es[i] = entry(i+1, t0.Add(time.Duration(i+1)*time.Second), "message", fmt.Sprintf(`"text":"line %d","mid":"m_%d"`, i+1, i+1))
			}
			lb.mu.Lock()
			lb.threads, lb.entries["7123"] = []string{"7123"}, es
			lb.mu.Unlock()
			f.in.rebuild(t.Context())

			ms := f.signIn("anna").detail().Messages
			var got []string
			for _, m := range ms {
				if m.From == FromPerson {
					got = append(got, m.Text)
				}
			}
			wantN := c.known + c.wantFromBat
			first := c.entries - wantN + 1
			if len(got) != wantN || got[0] != fmt.Sprint("line ", first) || got[len(got)-1] != fmt.Sprint("line ", c.entries) {
				t.Fatalf("%d messages (%s .. %s), want %d from line %d to line %d", len(got), got[0], got[len(got)-1], wantN, first, c.entries)
			}
			for i, s := range got {
				if s != fmt.Sprint("line ", first+i) {
					t.Fatalf("message %d is %q, want line %d: order or a gap", i, s, first+i)
				}
			}
			if n := lb.count("GET /v1/threads/100/7123/transcript"); n != c.wantCalls {
				t.Errorf("%d transcript calls, want %d", n, c.wantCalls)
			}
		})
	}
}

// The file is gone, and a message for a thread the inbox owns reaches it
// before its start has read Baton back: the conversation it makes from
// the delivery still gets the handover, and its reason, from the
// transcript.
func TestInboxLearnsTheHandoverOfAConversationADeliveryBroughtBack(t *testing.T) {
	f, lb := newListingFixture(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	f.deliver("dlv_1", "messaging", "inbox", pass("asked for a human", t0.UnixMilli()))
	opt := f.in.opt
	f.stop()
	if err := os.Remove(f.data); err != nil {
		t.Fatal(err)
	}
	lb.mu.Lock()
	lb.threads = []string{"7123"}
	lb.entries["7123"] = []string{
		entry(1, t0, "handover", `"from":"faq-bot","to":"inbox","event":"pass_thread_control","metadata":"asked for a human"`),
		entry(2, t0.Add(time.Second), "message", `"from":"7123","text":"still there?","mid":"m_3"`),
	}
	lb.mu.Unlock()
	f.start(opt)
	f.deliver("dlv_2", "messaging", "inbox", msg("m_3", "still there?", t0.Add(time.Second).UnixMilli()))
	f.in.rebuild(t.Context())

	d := f.signIn("anna").detail()
	if c := d.Conversation; !c.Assigned || c.Why != "asked for a human" || !c.HandedAt.Equal(t0) {
		t.Fatalf("conversation %+v", c)
	}
	if s, want := said(d.Messages), "event: handed to the inbox: asked for a human|person: still there?"; s != want {
		t.Errorf("messages = %q\nwant       %q", s, want)
	}
}
