package threads

import (
	"context"
	"fmt"
	"time"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// RunActions performs what a bot asked for in its answer to a delivery,
// in order; what cannot be done is shown in recent errors.
func (s *Service) RunActions(ctx context.Context, del *store.Delivery, actions []adapters.Action) {
	for _, act := range actions {
		req, err := actionRequest(del, act)
		if err != nil {
			s.d.Errors.Record(recent.Error{Kind: "action", App: del.App, Page: del.Page, PSID: del.PSID, Message: err.Error()})
			continue
		}
		if del.PSID == "" {
			continue
		}
		if _, err := s.Control(ctx, req); err != nil {
			s.d.Errors.Record(recent.Error{Kind: "action", App: del.App, Page: del.Page, PSID: del.PSID, Message: err.Error()})
		}
	}
}

func actionRequest(del *store.Delivery, act adapters.Action) (Request, error) {
	req := Request{Page: del.Page, PSID: del.PSID, App: del.App, Op: statemachine.Op(act.Type), Target: act.To,
		Metadata: act.Metadata, Cause: store.CauseCall, By: del.App}
	if act.Duration != "" {
		d, err := time.ParseDuration(act.Duration)
		if err != nil {
			return req, fmt.Errorf("extend duration: %w", err)
		}
		req.Duration = d
	}
	switch req.Op {
	case statemachine.OpPass, statemachine.OpTake, statemachine.OpRequest, statemachine.OpRelease, statemachine.OpExtend:
		return req, nil
	}
	return req, fmt.Errorf("unknown action type %q", act.Type)
}
