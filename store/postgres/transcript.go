package postgres

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/postgres/search"
)

// A thread's transcript is read by (page, psid, at, seq), newest first; a
// search and retention walk the entries by seq, the order they were
// recorded in. Cursors are store/bolt's: (at, seq) for a thread's pages,
// the seq to continue below for a search.

const (
	transcriptDefault = 50
	transcriptMax     = 500
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
		e, err := search.Decode(seq, raw)
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

// SearchTranscripts is package search's.
func (x *tx) SearchTranscripts(s store.TranscriptSearch) ([]store.TranscriptHit, string, error) {
	return search.Transcripts(x.ctx, x.t, s)
}
