package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
)

func say(k store.ThreadKey, at time.Time, text string) store.TranscriptEntry {
	return store.TranscriptEntry{At: at, Kind: store.TranscriptMessage, From: k.PSID, Text: text, RecordedAt: at}
}

func appendEntries(t *testing.T, s store.Store, k store.ThreadKey, es ...store.TranscriptEntry) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for i := range es {
			e := es[i] // a copy: the function may run again
			if err := tx.AppendTranscript(k, &e); err != nil {
				return err
			}
		}
		return nil
	})
}

// A thread's transcript reads newest first a page at a time, each page
// oldest first; entries are ordered by their time, whatever order they
// were written in, and another thread's (even one whose PSID extends
// this one's) never shows.
func testTranscript(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	k := store.ThreadKey{Page: "1", PSID: "7"}
	other := store.ThreadKey{Page: "1", PSID: "77"}
	var es []store.TranscriptEntry
	for i := range 7 {
		es = append(es, say(k, t0.Add(time.Duration(i)*time.Minute), fmt.Sprint("line ", i)))
	}
	// Line 3 arrives last (Meta's webhooks come out of order).
	appendEntries(t, s, k, es[0], es[1], es[2], es[4], es[5], es[6])
	appendEntries(t, s, other, say(other, t0.Add(time.Hour), "someone else"))
	appendEntries(t, s, k, es[3])

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		var page []store.TranscriptEntry
		var next string
		view(t, s, func(tx store.ReadTx) error {
			var err error
			page, next, err = tx.Transcript(k, cursor, 3)
			return err
		})
		if pages > 5 {
			t.Fatal("the transcript does not end")
		}
		var texts []string
		for _, e := range page {
			if e.Seq == 0 {
				t.Errorf("entry %q has no seq", e.Text)
			}
			texts = append(texts, e.Text)
		}
		got = append(texts, got...)
		if pages == 0 && fmt.Sprint(texts) != "[line 4 line 5 line 6]" {
			t.Errorf("the newest page is %q, want lines 4 to 6 oldest first", texts)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if want := "[line 0 line 1 line 2 line 3 line 4 line 5 line 6]"; fmt.Sprint(got) != want {
		t.Errorf("transcript %q, want %s", got, want)
	}
	view(t, s, func(tx store.ReadTx) error {
		if _, _, err := tx.Transcript(k, "not a cursor", 3); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("a made-up cursor: %v, want ErrInvalidCursor", err)
		}
		all, next, err := tx.Transcript(k, "", 0)
		if err != nil || len(all) != 7 || next != "" {
			t.Errorf("default limit: %d entries, next %q, %v", len(all), next, err)
		}
		none, next, err := tx.Transcript(store.ThreadKey{Page: "1", PSID: "8"}, "", 10)
		if err != nil || len(none) != 0 || next != "" {
			t.Errorf("a thread with no transcript: %v %q %v", none, next, err)
		}
		return nil
	})
	// Fields survive the store.
	full := store.TranscriptEntry{At: t0.Add(time.Hour), Kind: store.TranscriptEcho, From: "bot", App: "bot", Text: "hi",
		Attachments: []store.TranscriptAttachment{{Type: "image", URL: "https://x.invalid/a.png"}}, Mid: "m.1", Payload: "P",
		Event: "e", Metadata: "md", AIGenerated: true, RecordedAt: t0.Add(time.Hour)}
	appendEntries(t, s, k, full)
	view(t, s, func(tx store.ReadTx) error {
		es, _, err := tx.Transcript(k, "", 1)
		if err != nil || len(es) != 1 {
			t.Fatalf("newest entry: %v %v", es, err)
		}
		got := es[0]
		full.Seq = got.Seq
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", full) {
			t.Errorf("stored\n%+v\nread\n%+v", full, got)
		}
		return nil
	})
	err := s.Update(t.Context(), func(tx store.Tx) error {
		return tx.AppendTranscript(store.ThreadKey{Page: "1", PSID: "7\x00"}, &store.TranscriptEntry{RecordedAt: t0})
	})
	if err == nil {
		t.Error("a transcript entry for a PSID that is not a Meta id was stored")
	}
}

// A search finds threads by a word of their conversation, the PSID or the
// person's name, latest first, once a page, within one page of Meta's
// when asked; retention prunes what was recorded before the cut.
func testTranscriptSearch(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	a := store.ThreadKey{Page: "1", PSID: "7"}
	b := store.ThreadKey{Page: "1", PSID: "8"}
	c := store.ThreadKey{Page: "2", PSID: "9"}
	appendEntries(t, s, a, say(a, t0, "Where is my ORDER?"), say(a, t0.Add(time.Minute), "order 42 please"))
	appendEntries(t, s, b, say(b, t0.Add(2*time.Minute), "hello"))
	appendEntries(t, s, c, say(c, t0.Add(3*time.Minute), "my order too"))
	update(t, s, func(tx store.Tx) error {
		return tx.PutPerson(store.Person{ThreadKey: b, Name: "Ada Lovelace", LearntAt: t0, LearntVia: "profile"})
	})
	search := func(q store.TranscriptSearch) ([]store.TranscriptHit, string) {
		var hits []store.TranscriptHit
		var next string
		view(t, s, func(tx store.ReadTx) error {
			var err error
			hits, next, err = tx.SearchTranscripts(q)
			return err
		})
		return hits, next
	}
	keys := func(hs []store.TranscriptHit) string {
		var out []string
		for _, h := range hs {
			out = append(out, h.ThreadKey.String())
		}
		return fmt.Sprint(out)
	}
	tests := []struct {
		q    store.TranscriptSearch
		want string
	}{
		{store.TranscriptSearch{Query: "order"}, "[2/9 1/7]"},
		{store.TranscriptSearch{Query: "ORDER", Page: "1"}, "[1/7]"},
		{store.TranscriptSearch{Query: "8"}, "[1/8]"},
		{store.TranscriptSearch{Query: "lovelace"}, "[1/8]"},
		{store.TranscriptSearch{}, "[2/9 1/8 1/7]"},
		{store.TranscriptSearch{Query: "nothing like it"}, "[]"},
	}
	for _, tt := range tests {
		if hits, _ := search(tt.q); keys(hits) != tt.want {
			t.Errorf("search %+v found %s, want %s", tt.q, keys(hits), tt.want)
		}
	}
	hits, _ := search(store.TranscriptSearch{Query: "order", Page: "1"})
	if len(hits) == 1 && (hits[0].Snippet != "order 42 please" || !hits[0].LastAt.Equal(t0.Add(time.Minute))) {
		t.Errorf("hit %+v, want the latest match's text and time", hits[0])
	}
	if hits, _ := search(store.TranscriptSearch{Query: "8"}); len(hits) == 1 && hits[0].Name != "Ada Lovelace" {
		t.Errorf("hit %+v without the person's name", hits[0])
	}
	// Pages of one thread each: every thread once, then the end.
	var all []string
	q := store.TranscriptSearch{Limit: 1}
	for range 10 {
		hits, next := search(q)
		all = append(all, keys(hits))
		if next == "" {
			break
		}
		q.Cursor = next
	}
	if fmt.Sprint(all) != "[[2/9] [1/8] [1/7] [1/7]]" && fmt.Sprint(all) != "[[2/9] [1/8] [1/7] [1/7] []]" {
		t.Errorf("paged search %v, want each thread in turn (1/7 twice: its two lines)", all)
	}
	view(t, s, func(tx store.ReadTx) error {
		if _, _, err := tx.SearchTranscripts(store.TranscriptSearch{Cursor: "??"}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("a made-up search cursor: %v", err)
		}
		return nil
	})

	// Retention: what was recorded before t0+90s goes, two at a time.
	var pruned []int
	for range 3 {
		update(t, s, func(tx store.Tx) error {
			n, err := tx.PruneTranscript(t0.Add(90*time.Second), 1)
			pruned = append(pruned, n)
			return err
		})
	}
	if fmt.Sprint(pruned) != "[1 1 0]" {
		t.Errorf("pruned %v, want one entry a step, then none", pruned)
	}
	if hits, _ := search(store.TranscriptSearch{Query: "order", Page: "1"}); keys(hits) != "[]" {
		t.Errorf("search after retention found %s", keys(hits))
	}
	view(t, s, func(tx store.ReadTx) error {
		es, _, err := tx.Transcript(a, "", 10)
		if err != nil || len(es) != 0 {
			t.Errorf("thread 1/7 after retention: %v %v", es, err)
		}
		es, _, err = tx.Transcript(b, "", 10)
		if err != nil || len(es) != 1 {
			t.Errorf("thread 1/8 after retention: %v %v", es, err)
		}
		return nil
	})
}
