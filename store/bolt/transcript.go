package bolt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt/layout"
)

// A thread's transcript is a range of layout.Transcript, keyed page \0 psid \0
// at seq, so that reading the newest entries of one thread is a seek and
// a walk backwards. layout.TranscriptAge indexes every entry by seq, which is
// the order they were recorded: retention prunes from its first key,
// and a search walks it from its last, newest first, without visiting
// threads one by one. Each entry costs two puts in the group commit, both
// at the end of their B+tree's ranges (a thread's newest entry, the
// highest seq) where the pages are already hot.

const (
	transcriptDefault = 50
	transcriptMax     = 500
	searchDefault     = 20
	searchMax         = 100
	snippetRunes      = 120
)

func (x *tx) AppendTranscript(k store.ThreadKey, e *store.TranscriptEntry) error {
	if !k.Valid() {
		return fmt.Errorf("transcript of %s: page and PSID must be Meta ids", k)
	}
	if e.RecordedAt.IsZero() {
		return errors.New("a transcript entry needs the time it was recorded")
	}
	seq, err := x.b(layout.Transcript).NextSequence()
	if err != nil {
		return err
	}
	e.Seq = seq
	key := append(layout.TranscriptPrefix(k), layout.TranscriptPos(e.At, seq)...)
	b := x.b(layout.TranscriptAge)
	b.FillPercent = appendOnly
	if err := b.Put(layout.U64(seq), append(layout.TimeKey(e.RecordedAt), key...)); err != nil {
		return err
	}
	raw, err := layout.EncodeTranscript(e)
	if err != nil {
		return err
	}
	return x.b(layout.Transcript).Put(key, raw)
}

func (x *tx) Transcript(k store.ThreadKey, cursor string, limit int) ([]store.TranscriptEntry, string, error) {
	if limit <= 0 {
		limit = transcriptDefault
	}
	limit = min(limit, transcriptMax)
	prefix := layout.TranscriptPrefix(k)
	c := x.b(layout.Transcript).Cursor()
	var key []byte
	if cursor == "" {
		key, _ = c.Seek(append(layout.ThreadKey(k), 1)) // past the thread's last entry
	} else {
		pos, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(pos) != 16 {
			return nil, "", fmt.Errorf("%w: %q does not decode", store.ErrInvalidCursor, cursor)
		}
		key, _ = c.Seek(append(prefix, pos...))
	}
	var k2, v []byte
	if key == nil {
		k2, v = c.Last()
	} else {
		k2, v = c.Prev()
	}
	var out []store.TranscriptEntry
	for ; k2 != nil && bytes.HasPrefix(k2, prefix) && len(out) < limit; k2, v = c.Prev() {
		var e store.TranscriptEntry
		if err := unmarshal(v, &e); err != nil {
			return nil, "", fmt.Errorf("transcript of %s: %w", k, err)
		}
		out = append(out, e)
	}
	next := ""
	if k2 != nil && bytes.HasPrefix(k2, prefix) && len(out) > 0 {
		// Older entries remain: the next page ends before the oldest here.
		last := out[len(out)-1]
		next = base64.RawURLEncoding.EncodeToString(layout.TranscriptPos(last.At, last.Seq))
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, next, nil
}

func (x *tx) PruneTranscript(before time.Time, limit int) (int, error) {
	age := x.b(layout.TranscriptAge)
	cut := layout.TimeKey(before)
	var gone [][2][]byte
	c := age.Cursor()
	for k, v := c.First(); k != nil && len(gone) < limit; k, v = c.Next() {
		if len(v) < 8 {
			return 0, fmt.Errorf("transcript index entry %d is damaged", binary.BigEndian.Uint64(k))
		}
		if bytes.Compare(v[:8], cut) >= 0 {
			break // recorded in seq order: the rest are younger
		}
		gone = append(gone, [2][]byte{bytes.Clone(k), bytes.Clone(v[8:])})
	}
	for _, g := range gone { // after the walk: a cursor may skip past a delete
		if err := age.Delete(g[0]); err != nil {
			return 0, err
		}
		if err := x.b(layout.Transcript).Delete(g[1]); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}

func (x *tx) PutPerson(p store.Person) error {
	if !p.Valid() {
		return fmt.Errorf("person %s: page and PSID must be Meta ids", p.ThreadKey)
	}
	return put(x.b(layout.People), layout.ThreadKey(p.ThreadKey), p)
}

func (x *tx) Person(k store.ThreadKey) (store.Person, error) {
	return get[store.Person](x.b(layout.People), layout.ThreadKey(k))
}

// SearchTranscripts walks the index from the newest entry back, at most
// store.TranscriptScanBudget entries, and reports each thread at its
// first (latest) match. The cursor is the seq to continue below.
func (x *tx) SearchTranscripts(s store.TranscriptSearch) ([]store.TranscriptHit, string, error) {
	limit := s.Limit
	if limit <= 0 {
		limit = searchDefault
	}
	limit = min(limit, searchMax)
	q := strings.ToLower(strings.TrimSpace(s.Query))
	c := x.b(layout.TranscriptAge).Cursor()
	var k, v []byte
	if s.Cursor == "" {
		k, v = c.Last()
	} else {
		raw, err := base64.RawURLEncoding.DecodeString(s.Cursor)
		if err != nil || len(raw) != 8 {
			return nil, "", fmt.Errorf("%w: %q does not decode", store.ErrInvalidCursor, s.Cursor)
		}
		k, _ = c.Seek(raw)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
	}
	var pagePrefix []byte
	if s.Page != "" {
		pagePrefix = append([]byte(s.Page), 0)
	}
	type seen struct{ name string }
	names := map[string]*seen{} // by thread key: the person's name, read once
	reported := map[string]bool{}
	var hits []store.TranscriptHit
	tb := x.b(layout.Transcript)
	for examined := 0; k != nil; k, v = c.Prev() {
		if len(hits) == limit || examined == store.TranscriptScanBudget {
			// The next page starts at k: below k's seq + 1.
			return hits, base64.RawURLEncoding.EncodeToString(layout.U64(binary.BigEndian.Uint64(k) + 1)), nil
		}
		examined++
		if len(v) < 8 {
			continue
		}
		ekey := v[8:]
		if pagePrefix != nil && !bytes.HasPrefix(ekey, pagePrefix) {
			continue
		}
		if len(ekey) < 17 {
			continue
		}
		tk := ekey[:len(ekey)-17] // page \0 psid, without \0 at seq
		if reported[string(tk)] {
			continue
		}
		th := layout.SplitThreadKey(tk)
		info := names[string(tk)]
		if info == nil {
			info = &seen{}
			if p, err := x.Person(th); err == nil {
				info.name = p.Name
			} else if !errors.Is(err, store.ErrNotFound) {
				return nil, "", err
			}
			names[string(tk)] = info
		}
		raw := tb.Get(ekey)
		if raw == nil {
			continue
		}
		var e store.TranscriptEntry
		if err := unmarshal(raw, &e); err != nil {
			return nil, "", fmt.Errorf("transcript of %s: %w", th, err)
		}
		text := strings.ToLower(e.Text)
		if q != "" && th.PSID != q && !strings.Contains(strings.ToLower(info.name), q) && !strings.Contains(text, q) {
			continue
		}
		reported[string(tk)] = true
		hits = append(hits, store.TranscriptHit{ThreadKey: th, Name: info.name, LastAt: e.At, Snippet: e.Snippet(snippetRunes)})
	}
	return hits, "", nil
}

// eraseTranscript removes the person's transcript, its index entries and
// what Baton learnt of them.
func (x *tx) eraseTranscript(e *eraseRun) (bool, error) {
	if x.b(layout.People).Get(e.key) != nil {
		if err := x.b(layout.People).Delete(e.key); err != nil {
			return false, err
		}
		e.out.People++
	}
	prefix := layout.TranscriptPrefix(e.k)
	var gone [][]byte
	full := false
	c := x.b(layout.Transcript).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if full = e.full(len(gone)); full {
			break
		}
		gone = append(gone, bytes.Clone(k))
	}
	for _, k := range gone {
		if err := x.b(layout.TranscriptAge).Delete(k[len(k)-8:]); err != nil {
			return false, err
		}
		if err := x.b(layout.Transcript).Delete(k); err != nil {
			return false, err
		}
	}
	e.out.Transcript += len(gone)
	return !full, nil
}
