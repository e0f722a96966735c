package handover

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// The entry rule: a person who arrives through an m.me link's ref or an
// ad is handed to the app the rule names. Its job runs as escalation's
// does (runHandTo).

// armEntry arms the entry job when the event carries a referral a rule
// matches.
func (e *Engine) armEntry(tx store.Tx, p *topology.Page, ev *messenger.Event, th *store.Thread, now time.Time) (Firing, bool, error) {
	ref := referralOf(ev)
	if ref == nil {
		return Firing{}, false, nil
	}
	for _, en := range p.Rules.Entry {
		if !entryMatches(en, ref) || e.d.Topology.App(en.To).ID == th.Owner {
			continue
		}
		md := en.Metadata
		if md == "" {
			md = fmt.Sprintf("entry: referral %s %s", ref.Source, ref.Ref)
		}
		return Firing{Rule: RuleEntry, Result: armedResult}, true, tx.PutJob(store.Job{ThreadKey: th.ThreadKey, Rule: RuleEntry, At: now, Created: now,
			Target: en.To, Metadata: truncate(md, 1000), Reason: "referral " + ref.Source + " " + ref.Ref})
	}
	return Firing{}, false, nil
}

func referralOf(ev *messenger.Event) *messenger.Referral {
	switch {
	case ev.Referral != nil:
		return ev.Referral
	case ev.Postback != nil && ev.Postback.Referral != nil:
		return ev.Postback.Referral
	case ev.Message != nil && ev.Message.Referral != nil:
		return ev.Message.Referral
	}
	return nil
}

func entryMatches(e config.Entry, ref *messenger.Referral) bool {
	return (e.Ref == "" || e.Ref == ref.Ref) && (e.Source == "" || e.Source == ref.Source) && (e.AdID == "" || e.AdID == string(ref.AdID))
}
