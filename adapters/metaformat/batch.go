package metaformat

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/messenger"
)

// Meta's own webhooks carry several events per POST (entry[] and, in an
// entry, messaging[] or standby[]), but the SDKs bots are built on do not
// all read them (the shared brief's messenger/CLIENTS.md): bottender handles only
// the first event of each entry and decides standby from the first entry;
// Rasa's connector stops after the first entry. A batch here is therefore
// the shape every entry-reading SDK handles: one event per entry, several
// entries, all of one channel (messaging or standby). A dead letter an
// operator retried goes alone, since its X-Baton headers describe the
// whole request. A bot whose SDK reads only the first entry (Rasa) must
// leave batch off.

// DeliverBatch posts ds in as few of Meta's webhooks as are safe: one per
// channel, in the order of each channel's first delivery, and one for each
// retried dead letter. Each request's 200 settles its deliveries; a
// failure fails them (Meta's format has no answer per event).
func (a *Adapter) DeliverBatch(ctx context.Context, ds []*adapters.Delivery) []adapters.Outcome {
	out := make([]adapters.Outcome, len(ds))
	for _, group := range groups(ds) {
		now := a.now()
		body, err := BatchBody(pick(ds, group), now)
		if err != nil {
			err = &adapters.Error{Err: fmt.Errorf("encode webhook: %w", err)}
		}
		status := 0
		if err == nil {
			status, err = a.post(ctx, body, ds[group[0]].Retried, now)
		}
		for _, i := range group {
			out[i] = adapters.Outcome{Result: adapters.Result{Status: status}, Err: err}
		}
	}
	return out
}

// groups splits ds by the index of each delivery into the requests that
// carry them: one per channel, one per retried dead letter.
func groups(ds []*adapters.Delivery) [][]int {
	var out [][]int
	byChannel := map[string]int{}
	for i, d := range ds {
		if d.Retried != nil {
			out = append(out, []int{i})
			continue
		}
		g, ok := byChannel[d.Channel]
		if !ok {
			g = len(out)
			byChannel[d.Channel] = g
			out = append(out, nil)
		}
		out[g] = append(out[g], i)
	}
	return out
}

func pick(ds []*adapters.Delivery, idx []int) []*adapters.Delivery {
	out := make([]*adapters.Delivery, len(idx))
	for j, i := range idx {
		out[j] = ds[i]
	}
	return out
}

// BatchBody builds one of Meta's webhooks with an entry for each of ds,
// each entry holding its one event.
func BatchBody(ds []*adapters.Delivery, now time.Time) ([]byte, error) {
	entries := make([]entry, len(ds))
	for i, d := range ds {
		entries[i] = entry{ID: d.PageID, Time: now.UnixMilli()}
		if d.Channel == string(messenger.ChannelStandby) {
			entries[i].Standby = []json.RawMessage{d.Event}
		} else {
			entries[i].Messaging = []json.RawMessage{d.Event}
		}
	}
	return messenger.MarshalLikeMeta(struct {
		Object string  `json:"object"`
		Entry  []entry `json:"entry"`
	}{messenger.ObjectPage, entries})
}
