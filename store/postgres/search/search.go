// Package search is the transcript search of Baton's PostgreSQL store
// (store/postgres): store.ReadTx.SearchTranscripts.
package search

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/batonhq/baton/store"
)

const (
	searchDefault = 20
	searchMax     = 100
	snippetRunes  = 120
	// searchChunk is how many entries a search reads a query at a time:
	// a page that fills early leaves the rest unread.
	searchChunk = 256
)

// Querier is the transaction a search reads in.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Decode is a transcript entry of its seq and its JSON record.
func Decode(seq int64, raw []byte) (store.TranscriptEntry, error) {
	var e store.TranscriptEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return e, fmt.Errorf("transcript entry %d: %w", seq, err)
	}
	e.Seq = uint64(seq)
	return e, nil
}

// Transcripts walks the entries from the newest recorded back, at
// most store.TranscriptScanBudget of them, and reports each thread at its
// first (latest) match, as store/bolt's does. The cursor is the seq to
// continue below.
func Transcripts(ctx context.Context, q Querier, s store.TranscriptSearch) ([]store.TranscriptHit, string, error) {
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
	word := strings.ToLower(strings.TrimSpace(s.Query))
	names := map[store.ThreadKey]string{} // the person's name, read once a thread
	reported := map[store.ThreadKey]bool{}
	var hits []store.TranscriptHit
	for examined := 0; ; {
		rows, err := q.Query(ctx, `SELECT t.seq, t.page, t.psid, t.record, p.record FROM baton_transcript t
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
			e, err := Decode(r.seq, r.raw)
			if err != nil {
				return nil, "", err
			}
			if word != "" && r.k.PSID != word && !strings.Contains(strings.ToLower(name), word) && !strings.Contains(strings.ToLower(e.Text), word) {
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
