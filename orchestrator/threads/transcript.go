package threads

import (
	"fmt"

	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// transcribe writes a change of control into the thread's transcript,
// between the lines of the conversation, in the transaction that records
// it: whatever caused it (a webhook, a call, a rule, an expiry, an
// operator, a reconcile), the ledger is where every one passes.
func transcribe(tx store.Tx, p *topology.Page, k store.ThreadKey, h store.HistoryEntry) error {
	e := store.TranscriptEntry{At: h.At, RecordedAt: h.At, Kind: store.TranscriptHandover, Event: h.Event,
		From: appName(p, h.From), To: appName(p, h.To), Metadata: h.Metadata, Text: h.Cause + " by " + h.By}
	if err := tx.AppendTranscript(k, &e); err != nil {
		return fmt.Errorf("transcript of %s: %w", k, err)
	}
	return nil
}
