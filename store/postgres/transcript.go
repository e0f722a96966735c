package postgres

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/batonhq/baton/store"
)

// A thread's transcript is read by (page, psid, at, seq), newest first; a
// search and retention walk the entries by seq, the order they were
// recorded in. Cursors are store/bolt's: (at, seq) for a thread's pages,
// the seq to continue below for a search.

const (
	transcriptDefault = 50
	transcriptMax     = 500
	searchDefault     = 20
	searchMax         = 100
	snippetRunes      = 120
	// searchChunk is how many entries a search reads a query at a time:
	// a page that fills early leaves the rest unread.
	searchChunk = 256
)

func (x *tx) AppendTranscript(k store.ThreadKey, e *store.TranscriptEntry) error {
	if !k.Valid() {
		return fmt.Errorf("transcript of %s: page and PSID must be Meta ids", k)
	}
	if e.RecordedAt.IsZero() {
		return errors.New("a transcript entry needs the time it was recorded")
	}
	rec := *e
	rec.Seq = 0 // the column is the entry's seq
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	seq, err := x.nextID(x.seqs.transcript)
	if err != nil {
		return err
	}
	x.write("append transcript of "+k.String(), `INSERT INTO baton_transcript (seq, page, psid, shard, at, recorded_at, record)
		OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7)`, seq, k.Page, k.PSID, x.shard(k), nanos(e.At), nanos(e.RecordedAt), raw)
	e.Seq = uint64(seq)
	return nil
}

func decodeEntry(seq int64, raw []byte) (store.TranscriptEntry, error) {
	var e store.TranscriptEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return e, fmt.Errorf("transcript entry %d: %w", seq, err)
	}
	e.Seq = uint64(seq)
	return e, nil
}

func (x *tx) Transcript(k store.ThreadKey, cursor string, limit int) ([]store.TranscriptEntry, string, error) {
	if limit <= 0 {
		limit = transcriptDefault
	}
	limit = min(limit, transcriptMax)
	beforeAt, beforeSeq := int64(math.MaxInt64), int64(math.MaxInt64)
	if cursor != "" {
		pos, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(pos) != 16 {
			return nil, "", fmt.Errorf("%w: %q does not decode", store.ErrInvalidCursor, cursor)
		}
		beforeAt, beforeSeq = int64(binary.BigEndian.Uint64(pos)), int64(binary.BigEndian.Uint64(pos[8:]))
	}
	rows, err := x.t.Query(x.ctx, `SELECT seq, record FROM baton_transcript WHERE page = $1 AND psid = $2 AND (at, seq) < ($3, $4)
		ORDER BY at DESC, seq DESC LIMIT $5`, k.Page, k.PSID, beforeAt, beforeSeq, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: transcript of %s: %w", k, err)
	}
	defer rows.Close()
	var out []store.TranscriptEntry
	for rows.Next() {
		var seq int64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return nil, "", fmt.Errorf("postgres: transcript of %s: %w", k, err)
		}
		e, err := decodeEntry(seq, raw)
		if err != nil {
			return nil, "", err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("postgres: transcript of %s: %w", k, err)
	}
	next := ""
	if len(out) > limit {
		// Older entries remain: the next page ends before the oldest here.
		out = out[:limit]
		last := out[limit-1]
		pos := binary.BigEndian.AppendUint64(nil, uint64(nanos(last.At)))
		next = base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(pos, last.Seq))
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, next, nil
}

func (x *tx) PruneTranscript(before time.Time, limit int) (int, error) {
	n, err := x.exec("prune transcripts", `DELETE FROM baton_transcript WHERE seq IN (
		SELECT seq FROM baton_transcript WHERE recorded_at < $1 ORDER BY seq LIMIT $2)`, nanos(before), max(limit, 0))
	return int(n), err
}

func (x *tx) PutPerson(p store.Person) error {
	if !p.Valid() {
		return fmt.Errorf("person %s: page and PSID must be Meta ids", p.ThreadKey)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	x.write("write person", `INSERT INTO baton_people (page, psid, shard, record) VALUES ($1, $2, $3, $4)
		ON CONFLICT (page, psid) DO UPDATE SET record = EXCLUDED.record`, p.Page, p.PSID, x.shard(p.ThreadKey), raw)
	return nil
}

func (x *tx) Person(k store.ThreadKey) (store.Person, error) {
	return record[store.Person](x, "person", `SELECT record FROM baton_people WHERE page = $1 AND psid = $2`, k.Page, k.PSID)
}

// SearchTranscripts walks the entries from the newest recorded back, at
// most store.TranscriptScanBudget of them, and reports each thread at its
// first (latest) match, as store/bolt's does. The cursor is the seq to
// continue below.
func (x *tx) SearchTranscripts(s store.TranscriptSearch) ([]store.TranscriptHit, string, error) {
	limit := s.Limit
	if limit <= 0 {
		limit = searchDefault
	}
	limit = min(limit, searchMax)
	below := int64(math.MaxInt64)
	if s.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(s.Cursor)
		if err != nil || len(raw) != 8 {
			return nil, "", fmt.Errorf("%w: %q does not decode", store.ErrInvalidCursor, s.Cursor)
		}
		below = int64(min(binary.BigEndian.Uint64(raw), math.MaxInt64))
	}
	q := strings.ToLower(strings.TrimSpace(s.Query))
	names := map[store.ThreadKey]string{} // the person's name, read once a thread
	reported := map[store.ThreadKey]bool{}
	var hits []store.TranscriptHit
	for examined := 0; ; {
		rows, err := x.t.Query(x.ctx, `SELECT t.seq, t.page, t.psid, t.record, p.record FROM baton_transcript t
			LEFT JOIN baton_people p ON p.page = t.page AND p.psid = t.psid
			WHERE t.seq < $1 AND ($2 = '' OR t.page = $2) ORDER BY t.seq DESC LIMIT $3`, below, s.Page, searchChunk)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: search transcripts: %w", err)
		}
		type row struct {
			seq      int64
			k        store.ThreadKey
			raw, who []byte
		}
		var chunk []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.seq, &r.k.Page, &r.k.PSID, &r.raw, &r.who); err != nil {
				rows.Close()
				return nil, "", fmt.Errorf("postgres: search transcripts: %w", err)
			}
			chunk = append(chunk, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, "", fmt.Errorf("postgres: search transcripts: %w", err)
		}
		for _, r := range chunk {
			if len(hits) == limit || examined == store.TranscriptScanBudget {
				// The next page starts at this entry: below its seq + 1.
				return hits, base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, uint64(r.seq)+1)), nil
			}
			examined++
			below = r.seq
			if reported[r.k] {
				continue
			}
			name, ok := names[r.k]
			if !ok && r.who != nil {
				var p store.Person
				if err := json.Unmarshal(r.who, &p); err != nil {
					return nil, "", fmt.Errorf("postgres: person %s: %w", r.k, err)
				}
				name = p.Name
			}
			names[r.k] = name
			e, err := decodeEntry(r.seq, r.raw)
			if err != nil {
				return nil, "", err
			}
			if q != "" && r.k.PSID != q && !strings.Contains(strings.ToLower(name), q) && !strings.Contains(strings.ToLower(e.Text), q) {
				continue
			}
			reported[r.k] = true
			hits = append(hits, store.TranscriptHit{ThreadKey: r.k, Name: name, LastAt: e.At, Snippet: e.Snippet(snippetRunes)})
		}
		if len(chunk) < searchChunk {
			return hits, "", nil
		}
	}
}
