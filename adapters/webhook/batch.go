package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/batonhq/baton/adapters"
)

// A batch is one request carrying several envelopes, {"batch":[...]}, in
// the order Baton chose (a thread has at most one envelope in a batch, and
// its next batch waits for this one's answer). One Standard Webhooks
// signature covers the body; webhook-id is "batch_" and a digest of the
// envelopes' ids, the same when the same deliveries are sent again. A bot
// drops repeats by each envelope's own id.
//
// A 2xx answer settles the batch. With no body (or one without
// "results") every envelope was delivered with no actions; otherwise
// {"results":[{"id":"dlv_1","actions":[...]}, {"id":"dlv_2","status":503,
// "error":"busy"}]} gives one envelope's actions, or its failure as the
// status a single delivery would have got (408, 429 and 5xx retried, any
// other refused); an envelope not named in results was delivered. Any
// other answer fails every envelope of the batch, as it would one.

// batchResult is one envelope's part of a bot's answer to a batch.
type batchResult struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Error   string            `json:"error"`
	Actions []adapters.Action `json:"actions"`
}

// BatchID is the webhook-id of a batch of these envelope ids.
func BatchID(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{','})
	}
	return "batch_" + hex.EncodeToString(h.Sum(nil)[:12])
}

// encodeBatch writes {"batch":[envelope,...]}, each envelope as encode
// writes it.
func encodeBatch(ds []*adapters.Delivery) ([]byte, error) {
	size := len(`{"batch":[]}`) + len(ds)
	for _, d := range ds {
		size += envelopeSize(d)
	}
	b := append(make([]byte, 0, size), `{"batch":[`...)
	for i, d := range ds {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendEnvelope(b, d); err != nil {
			return nil, fmt.Errorf("delivery %s: %w", d.ID, err)
		}
	}
	return append(b, `]}`...), nil
}

// DeliverBatch posts ds as one batch and returns each one's outcome, in
// the order of ds.
func (a *Adapter) DeliverBatch(ctx context.Context, ds []*adapters.Delivery) []adapters.Outcome {
	body, err := encodeBatch(ds)
	if err != nil {
		return adapters.FailAll(len(ds), &adapters.Error{Err: fmt.Errorf("encode batch: %w", err)})
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	status, raw, err := a.post(ctx, BatchID(ids), body)
	if err != nil {
		out := adapters.FailAll(len(ds), err)
		for i := range out {
			out[i].Result.Status = status
		}
		return out
	}
	return batchOutcomes(ds, status, raw)
}

// batchOutcomes reads a 2xx answer to a batch: what results says of each
// envelope, delivered for the rest. A body that does not parse means
// delivered: the bot answered 2xx, as a single delivery's would.
func batchOutcomes(ds []*adapters.Delivery, status int, raw []byte) []adapters.Outcome {
	out := make([]adapters.Outcome, len(ds))
	for i := range out {
		out[i].Result.Status = status
	}
	var answer struct {
		Results []batchResult `json:"results"`
	}
	if len(bytes.TrimSpace(raw)) == 0 || json.Unmarshal(raw, &answer) != nil {
		return out
	}
	at := make(map[string]int, len(ds))
	for i, d := range ds {
		at[d.ID] = i
	}
	for _, r := range answer.Results {
		i, ok := at[r.ID]
		if !ok {
			continue // not in this batch
		}
		if r.Status != 0 && r.Status/100 != 2 {
			out[i] = adapters.Outcome{Result: adapters.Result{Status: r.Status},
				Err: adapters.Check(r.Status, http.Header{}, []byte(r.Error), time.Now())}
			continue
		}
		out[i].Result.Actions = r.Actions
	}
	return out
}
