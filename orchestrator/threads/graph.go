package threads

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// Graph is what the service needs of Meta's Graph API; *messenger.Client
// implements it, and tests hand in one that fails.
type Graph interface {
	PassThreadControl(ctx context.Context, c messenger.Credentials, psid, target messenger.ID, metadata string) error
	TakeThreadControl(ctx context.Context, c messenger.Credentials, psid messenger.ID, metadata string) error
	RequestThreadControl(ctx context.Context, c messenger.Credentials, psid messenger.ID, metadata string) error
	ReleaseThreadControl(ctx context.Context, c messenger.Credentials, psid messenger.ID, metadata string) error
	ExtendThreadControl(ctx context.Context, c messenger.Credentials, psid messenger.ID, d time.Duration) error
	ThreadOwner(ctx context.Context, c messenger.Credentials, psid messenger.ID) (messenger.ThreadOwner, error)
}

func (s *Service) call(ctx context.Context, cred messenger.Credentials, req Request, target string) error {
	psid := messenger.ID(req.PSID)
	// The last moment to find the lease gone: past it, the call is made.
	if err := s.owns(store.ThreadKey{Page: req.Page, PSID: req.PSID}); err != nil {
		return err
	}
	g := s.d.Graph
	switch req.Op {
	case statemachine.OpPass:
		return g.PassThreadControl(ctx, cred, psid, messenger.ID(target), req.Metadata)
	case statemachine.OpTake:
		return g.TakeThreadControl(ctx, cred, psid, req.Metadata)
	case statemachine.OpRequest:
		return g.RequestThreadControl(ctx, cred, psid, req.Metadata)
	case statemachine.OpRelease:
		return g.ReleaseThreadControl(ctx, cred, psid, req.Metadata)
	case statemachine.OpExtend:
		return g.ExtendThreadControl(ctx, cred, psid, req.Duration)
	}
	return apierr.Errorf(apierr.Invalid, "unknown action %s", req.Op)
}

// GraphResult is the result label of a Graph call in
// baton_graph_calls_total.
func GraphResult(err error) string {
	var ge *messenger.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ge):
		return fmt.Sprintf("error_%d", ge.Code)
	}
	return "transport_error"
}

// ownershipInDoubt reports whether Meta's answer to a thread-control call
// may mean that Baton's record is wrong, matched by (code, subcode):
// 10/2018300, Instagram's 100/2534037, and Messenger's 100 without a
// subcode, which Meta gives both for "not the thread owner" and for
// "invalid parameter". One thread_owner read settles either.
func ownershipInDoubt(err error) bool {
	var ge *messenger.Error
	if messenger.IsNotOwner(err) || !errors.As(err, &ge) {
		return messenger.IsNotOwner(err)
	}
	return ge.Code == messenger.CodeInvalidParameter && (ge.Subcode == 0 || ge.Subcode == messenger.SubcodeIGNotOwner)
}
