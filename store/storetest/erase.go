package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/batonhq/baton/store"
)

// person fills the store with one of every kind of record kept about the
// person of thread k, and returns how many of each it wrote.
func person(t *testing.T, s store.Store, k store.ThreadKey, ts int64) store.Erased {
	t.Helper()
	var n store.Erased
	event := func(from, to string, extra string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"sender":{"id":%q},"recipient":{"id":%q},"timestamp":%d%s}`, from, to, ts, extra))
	}
	update(t, s, func(tx store.Tx) error {
		n = store.Erased{}
		if err := tx.PutThread(owned(k.Page, k.PSID, "62", t0.Add(24*time.Hour))); err != nil {
			return err
		}
		n.Threads++
		for i := range 3 {
			if err := tx.AppendHistory(k, store.HistoryEntry{At: t0, Event: fmt.Sprint("pass", i), Cause: store.CauseWebhook}); err != nil {
				return err
			}
			n.History++
		}
		// The person's message, and the page's echo to them (the person
		// is its recipient), each read by a delivery that shares it.
		for _, ev := range []json.RawMessage{event(k.PSID, k.Page, `,"message":{"mid":"m.`+k.PSID+`","text":"hi"}`),
			event(k.Page, k.PSID, `,"message":{"is_echo":true,"text":"hello"}`)} {
			j := &store.JournalEntry{ReceivedAt: t0, App: "bot", Page: k.Page, Channel: "messaging", Event: ev}
			if err := tx.AppendJournal(j); err != nil {
				return err
			}
			n.Journal++
			d := &store.Delivery{App: "bot", Page: k.Page, PSID: k.PSID, Event: ev, JournalSeq: j.Seq, SharesEvent: true, CreatedAt: t0}
			if err := tx.Enqueue(d); err != nil {
				return err
			}
			n.Pending++
		}
		// Another bot's lane, and one delivery that died.
		for _, app := range []string{"inbox", "standby"} {
			d := &store.Delivery{App: app, Page: k.Page, PSID: k.PSID, Event: event(k.PSID, k.Page, `,"read":{"watermark":1}`), CreatedAt: t0}
			if err := tx.Enqueue(d); err != nil {
				return err
			}
			n.Pending++
		}
		dead := &store.Delivery{App: "bot", Page: k.Page, PSID: k.PSID, Event: event(k.PSID, k.Page, `,"postback":{"payload":"x"}`), CreatedAt: t0}
		if err := tx.Enqueue(dead); err != nil {
			return err
		}
		dead.Attempts, dead.DeadAt = 5, t0
		if err := tx.KillDelivery(*dead); err != nil {
			return err
		}
		n.Dead++
		for _, rule := range []string{"escalate", "return"} {
			if err := tx.PutJob(store.Job{ThreadKey: k, Rule: rule, At: t0.Add(time.Hour), Message: "a human will answer"}); err != nil {
				return err
			}
			n.Jobs++
		}
		if err := tx.PutIntent(store.Intent{ThreadKey: k, App: "bot", Op: "pass", At: t0}); err != nil {
			return err
		}
		n.Intents++
		if err := tx.PutOneTimeToken(store.OneTimeToken{Token: "otn-" + k.Page + "-" + k.PSID, Page: k.Page, PSID: k.PSID, Created: t0}); err != nil {
			return err
		}
		n.OneTimeTokens++
		// A receipt's mark names the person; a message's holds Meta's id.
		for _, key := range []string{"rd:" + k.Page + ":" + k.PSID + ":1", "m:m." + k.PSID} {
			if _, err := tx.MarkSeen(key, time.UnixMilli(ts), t0, 48*time.Hour); err != nil {
				return err
			}
		}
		n.DedupMarks++
		for i := range 2 {
			e := store.TranscriptEntry{At: t0.Add(time.Duration(i) * time.Second), Kind: store.TranscriptMessage, From: k.PSID, Text: "hi", RecordedAt: t0}
			if err := tx.AppendTranscript(k, &e); err != nil {
				return err
			}
			n.Transcript++
		}
		if err := tx.PutPerson(store.Person{ThreadKey: k, Name: "Person " + k.PSID, LearntAt: t0}); err != nil {
			return err
		}
		n.People++
		return nil
	})
	return n
}

// held counts what the store keeps about the person of thread k, through
// the read interface, as person counts it.
func held(t *testing.T, s store.Store, k store.ThreadKey) store.Erased {
	t.Helper()
	var n store.Erased
	view(t, s, func(tx store.ReadTx) error {
		n = store.Erased{}
		if _, err := tx.Thread(k); err == nil {
			n.Threads++
		}
		h, err := tx.History(k)
		if err != nil {
			return err
		}
		n.History = len(h)
		for after := uint64(0); ; {
			js, err := tx.Journal(after, 2)
			if err != nil {
				return err
			}
			if len(js) == 0 {
				break
			}
			for _, j := range js {
				var who struct {
					Sender, Recipient struct {
						ID string `json:"id"`
					}
				}
				if err := json.Unmarshal(j.Event, &who); err != nil {
					return err
				}
				if j.Page == k.Page && (who.Sender.ID == k.PSID || who.Recipient.ID == k.PSID) {
					n.Journal++
				}
				after = j.Seq
			}
		}
		lanes := 0
		for _, app := range []string{"bot", "inbox", "standby"} {
			p, err := tx.LanePending(app, k, 100)
			if err != nil {
				return err
			}
			lanes += len(p)
		}
		pending, err := tx.PendingDeliveries(0, 0)
		if err != nil {
			return err
		}
		for _, d := range pending {
			if d.Page == k.Page && d.PSID == k.PSID {
				n.Pending++
			}
		}
		if lanes != n.Pending {
			t.Errorf("%s: %d deliveries pending but %d in their lanes", k, n.Pending, lanes)
		}
		dead, err := tx.DeadDeliveries(0, 0)
		if err != nil {
			return err
		}
		for _, d := range dead {
			if d.Page == k.Page && d.PSID == k.PSID {
				n.Dead++
			}
		}
		for _, rule := range []string{"escalate", "return"} {
			if _, err := tx.Job(k, rule); err == nil {
				n.Jobs++
			}
		}
		if _, err := tx.Intent(k); err == nil {
			n.Intents++
		}
		if _, err := tx.OneTimeToken("otn-" + k.Page + "-" + k.PSID); err == nil {
			n.OneTimeTokens++
		}
		es, _, err := tx.Transcript(k, "", 500)
		if err != nil {
			return err
		}
		n.Transcript = len(es)
		if _, err := tx.Person(k); err == nil {
			n.People++
		}
		// Searching by PSID finds nothing of an erased person: the index
		// went with the entries.
		hits, _, err := tx.SearchTranscripts(store.TranscriptSearch{Query: k.PSID, Page: k.Page})
		if err != nil {
			return err
		}
		found := 0
		for _, h := range hits {
			if h.ThreadKey == k {
				found++
			}
		}
		if (found > 0) != (n.Transcript > 0) {
			t.Errorf("%s: a search by PSID finds the thread %d times, the transcript has %d entries", k, found, n.Transcript)
		}
		return nil
	})
	return n
}

// marked reports whether the store still has the person's receipt mark
// (an erased one is fresh again; the probe sets it, so look last).
func marked(t *testing.T, s store.Store, k store.ThreadKey, ts int64) bool {
	t.Helper()
	var fresh bool
	update(t, s, func(tx store.Tx) error {
		var err error
		fresh, err = tx.MarkSeen("rd:"+k.Page+":"+k.PSID+":1", time.UnixMilli(ts), t0, 48*time.Hour)
		return err
	})
	return !fresh
}

// withoutMarks is what held can count of n.
func withoutMarks(n store.Erased) store.Erased { n.DedupMarks = 0; return n }

// The erase of one person removes every kind of record kept about them,
// counts each, leaves everyone else's alone, and is idempotent.
func testErase(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	gone := store.ThreadKey{Page: "1", PSID: "7"}
	// Someone else on the page, the same digits on another page (a PSID
	// is the page's own), and a PSID that has the erased one's digits in
	// it.
	others := []store.ThreadKey{{Page: "1", PSID: "8"}, {Page: "2", PSID: "7"}, {Page: "1", PSID: "77"}}
	want := person(t, s, gone, 1000)
	wantOthers := make([]store.Erased, len(others))
	for i, k := range others {
		wantOthers[i] = person(t, s, k, int64(2000+i))
	}
	// A message of someone else that quotes the erased PSID stays.
	update(t, s, func(tx store.Tx) error {
		return tx.AppendJournal(&store.JournalEntry{App: "bot", Page: "1", Event: json.RawMessage(`{"sender":{"id":"8"},"recipient":{"id":"1"},"message":{"text":"7"}}`)})
	})
	wantOthers[0].Journal++
	countsBefore := threadCounts(t, s)
	pendingBefore := pendingCounts(t, s)

	if got := held(t, s, gone); got != withoutMarks(want) {
		t.Fatalf("before the erase the store holds %+v, want %+v", got, want)
	}
	// Steps of one record each: every phase stops and resumes.
	var total store.Erased
	from, steps := "", 0
	for {
		var step store.Erased
		update(t, s, func(tx store.Tx) error {
			var err error
			step, from, err = tx.ErasePerson(gone, from, 1)
			return err
		})
		total.Add(step)
		if steps++; from == "" || steps > 1000 {
			break
		}
	}
	if total != want {
		t.Errorf("erase removed %+v, want %+v", total, want)
	}
	// The thread's own records go in one step; the rest one at a time.
	if steps < want.Total()-want.Threads-want.Intents-want.Jobs {
		t.Errorf("an erase with a limit of 1 took %d steps for %d records", steps, want.Total())
	}
	if got := held(t, s, gone); got != (store.Erased{}) {
		t.Errorf("after the erase the store still holds %+v", got)
	}
	for i, k := range others {
		if got, w := held(t, s, k), withoutMarks(wantOthers[i]); got != w {
			t.Errorf("%s: the store holds %+v after another person's erase, want %+v", k, got, w)
		}
	}
	view(t, s, func(tx store.ReadTx) error {
		js, err := tx.Journal(0, 1000)
		if err != nil {
			return err
		}
		quoted := 0
		for _, j := range js {
			if string(j.Event) == `{"sender":{"id":"8"},"recipient":{"id":"1"},"message":{"text":"7"}}` {
				quoted++
			}
		}
		if quoted != 1 {
			t.Errorf("another person's message quoting the PSID: %d left, want 1", quoted)
		}
		due, err := tx.DueTimers(t0.Add(48*time.Hour), 100)
		if err != nil {
			return err
		}
		for _, k := range due {
			if k == gone {
				t.Error("the erased thread's timer is still due")
			}
		}
		return nil
	})
	if got := threadCounts(t, s); got[string(owned("", "", "", t0).State)] != countsBefore[string(owned("", "", "", t0).State)]-1 {
		t.Errorf("threads per state %v, want one fewer than %v", got, countsBefore)
	}
	if got := pendingCounts(t, s); got["bot"] != pendingBefore["bot"]-2 || got["inbox"] != pendingBefore["inbox"]-1 {
		t.Errorf("pending per bot %v, want bot and inbox down from %v", got, pendingBefore)
	}

	// Again: nothing is left to remove.
	again, err := store.Erase(context.Background(), s, gone)
	if err != nil || again != (store.Erased{}) {
		t.Errorf("a second erase removed %+v (%v), want nothing", again, err)
	}
	// Erase runs the steps itself, with counts summed.
	k := others[0]
	got, err := store.Erase(context.Background(), s, k)
	if w := (store.Erased{Threads: 1, History: 3, Journal: 3, Pending: 4, Dead: 1, Jobs: 2, Intents: 1, OneTimeTokens: 1, DedupMarks: 1, Transcript: 2, People: 1}); err != nil || got != w {
		t.Errorf("Erase(%s) = %+v, %v; want %+v", k, got, err, w)
	}
	if marked(t, s, gone, 1000) {
		t.Error("the erased person's receipt mark is still there")
	}
	for i, k := range others[1:] {
		if !marked(t, s, k, int64(2001+i)) {
			t.Errorf("%s: receipt mark gone with another person's erase", k)
		}
	}
	// Not a Meta id: refused, before any key is built from it.
	for _, bad := range []store.ThreadKey{{Page: "1"}, {Page: "1", PSID: "7\x00"}, {Page: "", PSID: "7"}, {Page: "1", PSID: "x"}} {
		err := s.Update(context.Background(), func(tx store.Tx) error {
			_, _, err := tx.ErasePerson(bad, "", 10)
			return err
		})
		if err == nil {
			t.Errorf("erase of %q was not refused", bad)
		}
	}
	err = s.Update(context.Background(), func(tx store.Tx) error {
		_, _, err := tx.ErasePerson(gone, "not a cursor", 10)
		return err
	})
	if err == nil {
		t.Error("an erase step from a made-up cursor was not refused")
	}
}

// A delivery erased while the dispatcher attempted it: its done mark is
// nothing, its retry and its dead letter are ErrNotFound, so it comes back
// neither to the outbox nor to the dead letters.
func testEraseInFlight(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	k := store.ThreadKey{Page: "1", PSID: "7"}
	var d store.Delivery
	update(t, s, func(tx store.Tx) error {
		d = store.Delivery{App: "bot", Page: k.Page, PSID: k.PSID, Event: json.RawMessage(`{"sender":{"id":"7"}}`), CreatedAt: t0}
		return tx.Enqueue(&d)
	})
	if _, err := store.Erase(context.Background(), s, k); err != nil {
		t.Fatal(err)
	}
	d.Attempts, d.LastError = 1, "bot down"
	for name, fn := range map[string]func(tx store.Tx) error{
		"update": func(tx store.Tx) error { return tx.UpdateDelivery(d) },
		"kill":   func(tx store.Tx) error { return tx.KillDelivery(d) },
	} {
		if err := s.Update(context.Background(), fn); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of an erased delivery: %v, want ErrNotFound", name, err)
		}
	}
	update(t, s, func(tx store.Tx) error { return tx.DeleteDelivery(d.ID) })
	view(t, s, func(tx store.ReadTx) error {
		dead, _ := tx.DeadDeliveries(0, 0)
		pending, _ := tx.PendingDeliveries(0, 0)
		if len(dead)+len(pending) != 0 {
			t.Errorf("an erased delivery came back: dead %+v pending %+v", dead, pending)
		}
		return nil
	})
}

// Deletion requests are kept, listed by status and updated in place.
func testDeletions(t *testing.T, open Opener) {
	dir := t.TempDir()
	s := open(t, dir)
	update(t, s, func(tx store.Tx) error {
		for i, st := range []string{store.DeletionPending, store.DeletionDone, store.DeletionPending} {
			if err := tx.PutDeletion(store.Deletion{Code: fmt.Sprint("c", i), App: "bot", UserID: "42", Status: st, RequestedAt: t0}); err != nil {
				return err
			}
		}
		if err := tx.PutDeletion(store.Deletion{}); err == nil {
			return errors.New("a deletion request without a code was stored")
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		return tx.PutDeletion(store.Deletion{Code: "c2", App: "bot", Status: store.DeletionDone, RequestedAt: t0, DoneAt: t0, Erased: store.Erased{Threads: 1}})
	})
	if c, ok := s.(interface{ Close() error }); ok {
		c.Close()
	}
	s = open(t, dir)
	view(t, s, func(tx store.ReadTx) error {
		pending, err := tx.Deletions(store.DeletionPending, 0)
		if err != nil || len(pending) != 1 || pending[0].Code != "c0" {
			t.Errorf("pending deletions %+v %v", pending, err)
		}
		all, _ := tx.Deletions("", 0)
		if len(all) != 3 {
			t.Errorf("all deletions %+v", all)
		}
		d, err := tx.Deletion("c2")
		if err != nil || d.Status != store.DeletionDone || d.Erased.Threads != 1 || d.UserID != "" {
			t.Errorf("c2 = %+v %v", d, err)
		}
		if _, err := tx.Deletion("nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a missing code: %v", err)
		}
		return nil
	})
}

func threadCounts(t *testing.T, s store.Store) (m map[string]int) {
	view(t, s, func(tx store.ReadTx) error {
		var err error
		m, err = tx.CountThreads()
		return err
	})
	return m
}

func pendingCounts(t *testing.T, s store.Store) (m map[string]int) {
	view(t, s, func(tx store.ReadTx) error {
		var err error
		m, err = tx.CountPending()
		return err
	})
	return m
}

// The person writes again while their erase runs: what came after the
// erase began may stay, but never a pending delivery whose event the
// erase took from the journal.
func testEraseWhileWriting(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	k := store.ThreadKey{Page: "1", PSID: "7"}
	person(t, s, k, 1000)
	from, steps := "", 0
	for {
		update(t, s, func(tx store.Tx) error {
			var err error
			_, from, err = tx.ErasePerson(k, from, 1)
			return err
		})
		if steps++; steps%3 == 1 { // a new message and its delivery, now and then
			update(t, s, func(tx store.Tx) error {
				ev := json.RawMessage(fmt.Sprintf(`{"sender":{"id":"7"},"recipient":{"id":"1"},"message":{"text":"again %d"}}`, steps))
				j := &store.JournalEntry{ReceivedAt: t0, App: "bot", Page: k.Page, Event: ev}
				if err := tx.AppendJournal(j); err != nil {
					return err
				}
				return tx.Enqueue(&store.Delivery{App: "bot", Page: k.Page, PSID: k.PSID, Event: ev, JournalSeq: j.Seq, SharesEvent: true})
			})
		}
		if from == "" || steps > 1000 {
			break
		}
	}
	view(t, s, func(tx store.ReadTx) error {
		pending, err := tx.PendingDeliveries(0, 0)
		if err != nil {
			t.Errorf("a pending delivery lost its event to the erase: %v", err)
		}
		for _, d := range pending {
			if len(d.Event) == 0 {
				t.Errorf("delivery %d has no event", d.ID)
			}
		}
		return nil
	})
	if _, err := store.Erase(context.Background(), s, k); err != nil {
		t.Fatal(err)
	}
	if got := held(t, s, k); got != (store.Erased{}) {
		t.Errorf("a second erase left %+v", got)
	}
}
