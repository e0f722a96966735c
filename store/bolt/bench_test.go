package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// ingressWrite is roughly what one webhook costs the store: a dedup mark,
// a journal entry, a thread update and one delivery.
// event is a ~1 KB webhook event, as Baton stores it twice per message
// (journal and outbox).
var event = []byte(`{"sender":{"id":"7123456789012345"},"recipient":{"id":"100200300400500"},"timestamp":1718000000000,"message":{"mid":"m_1","text":"` + strings.Repeat("x", 850) + `"}}`)

func ingressWrite(i int64) func(store.Tx) error {
	return func(tx store.Tx) error {
		now := time.Unix(1795557600, 0)
		if _, err := tx.MarkSeen(mid(i), now.Add(time.Duration(i)*time.Millisecond), now, 48*time.Hour); err != nil {
			return err
		}
		if err := tx.AppendJournal(&store.JournalEntry{App: "a", Page: "1", Event: event}); err != nil {
			return err
		}
		k := store.ThreadKey{Page: "100200300400500", PSID: fmt.Sprint(7000000000000000 + i%1000)}
		if err := tx.PutThread(store.Thread{ThreadKey: k, Thread: statemachine.Thread{State: statemachine.Primary, Owner: "1", ExpiresAt: now.Add(24 * time.Hour)}}); err != nil {
			return err
		}
		return tx.Enqueue(&store.Delivery{App: "a", Page: k.Page, PSID: k.PSID, Event: event})
	}
}

// mid is a message id as Meta makes them: unordered.
func mid(i int64) string {
	h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
	return "m:m_" + base64.RawURLEncoding.EncodeToString(h[:24])
}

// BenchmarkIngressWriteSerial: one caller, one fsync per write.
func BenchmarkIngressWriteSerial(b *testing.B) {
	db := MustOpen(b, b.TempDir())
	var i int64
	for b.Loop() {
		i++
		if err := db.Update(context.Background(), ingressWrite(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngressWriteGrouped: 64 concurrent callers share commits.
func BenchmarkIngressWriteGrouped(b *testing.B) {
	dir := b.TempDir()
	db := MustOpen(b, dir)
	defer func() {
		// Bytes of data file per write: what the layout costs in disk, and
		// roughly in pages written.
		if st, err := os.Stat(filepath.Join(dir, "baton.db")); err == nil && b.N > 0 {
			b.ReportMetric(float64(st.Size())/float64(b.N), "file-B/op")
		}
	}()
	var i atomic.Int64
	b.SetParallelism(32) // 2 cores x 32 = 64 callers
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := db.Update(context.Background(), ingressWrite(i.Add(1))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkThreadRead(b *testing.B) {
	b.ReportAllocs()
	db := MustOpen(b, b.TempDir())
	for i := range int64(1000) {
		if err := db.Update(context.Background(), ingressWrite(i)); err != nil {
			b.Fatal(err)
		}
	}
	k := store.ThreadKey{Page: "100200300400500", PSID: "7000000000000500"}
	for b.Loop() {
		_ = db.View(func(tx store.ReadTx) error { _, err := tx.Thread(k); return err })
	}
}

// BenchmarkPruneJournal: one batch of the hourly journal sweep, which
// webhooks wait behind (a write transaction), from a journal of 1 KB
// events.
func BenchmarkPruneJournal(b *testing.B) {
	db := MustOpen(b, b.TempDir())
	const batch = 2000
	now := time.Unix(1795557600, 0)
	fill := func() {
		if err := db.Update(context.Background(), func(tx store.Tx) error {
			for range batch {
				if err := tx.AppendJournal(&store.JournalEntry{ReceivedAt: now, App: "a", Page: "1", Event: event}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		b.StopTimer()
		fill()
		b.StartTimer()
		if err := db.Update(context.Background(), func(tx store.Tx) error {
			n, err := tx.PruneJournal(now.Add(time.Hour), batch)
			if err == nil && n != batch {
				err = fmt.Errorf("pruned %d", n)
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// enqueueShared journals n events and enqueues a delivery sharing each,
// as ingress does.
func enqueueShared(b *testing.B, db store.Store, n int) []uint64 {
	ids := make([]uint64, 0, n)
	for n > 0 {
		m := min(n, 1000)
		n -= m
		if err := db.Update(context.Background(), func(tx store.Tx) error {
			for range m {
				j := &store.JournalEntry{App: "a", Page: "1", Event: event}
				if err := tx.AppendJournal(j); err != nil {
					return err
				}
				d := &store.Delivery{App: "a", Page: "1", PSID: "2", Event: event, JournalSeq: j.Seq, SharesEvent: true}
				if err := tx.Enqueue(d); err != nil {
					return err
				}
				ids = append(ids, d.ID)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// BenchmarkOutboxDone: the dispatcher's claim on the outbox ends with a
// done mark; marks are written in batches, here of 64, per transaction.
// ns/op is per delivery.
func BenchmarkOutboxDone(b *testing.B) {
	db := MustOpen(b, b.TempDir())
	ids := enqueueShared(b, db, 64*b.N)
	b.ResetTimer()
	for i := 0; i < len(ids); i += 64 {
		if err := db.Update(context.Background(), func(tx store.Tx) error {
			for _, id := range ids[i : i+64] {
				if err := tx.DeleteDelivery(id); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(len(ids)), "ns/delivery")
}

// BenchmarkOutboxLoad: the whole outbox with its events read back from
// the journal, as the admin listing of pending deliveries reads it (the
// dispatcher reads lanes instead: BenchmarkLaneHeads); here 10,000.
func BenchmarkOutboxLoad(b *testing.B) {
	db := MustOpen(b, b.TempDir())
	enqueueShared(b, db, 10000)
	for b.Loop() {
		if err := db.View(func(tx store.ReadTx) error {
			ds, err := tx.PendingDeliveries(0, 0)
			if err == nil && len(ds) != 10000 {
				err = fmt.Errorf("%d pending", len(ds))
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}
