// Package deletion erases what Baton keeps about one person, and serves
// Meta's data deletion callback for each hosted app: a signed request
// that names a person by their app-scoped id, answered with a status URL
// and a confirmation code, the erase done in the background from a
// durable record of the request, so that a restart resumes it and the
// status URL still answers.
package deletion

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/recent"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// Graph is the Graph API call the ID Matching API needs;
// *messenger.Client is one.
type Graph interface {
	RawBody(ctx context.Context, method string, cred messenger.Credentials, edge string, q url.Values, contentType string, payload []byte) (int, []byte, error)
}

// Deps are what the service needs.
type Deps struct {
	Store    store.Store
	Topology *topology.Topology
	// Graph maps an app-scoped id to the person's PSIDs (ids_for_pages);
	// nil matches the id as a PSID only.
	Graph Graph
	Clock clock.Clock
	Log   *zap.Logger
	// Errors keeps recent problems; an erase makes it forget the person's,
	// and a refused callback is recorded there.
	Errors *recent.Errors
	// PublicURL is where people reach the public listener (config
	// public_url); empty builds status URLs from the request's Host.
	PublicURL string
	// MaxAge is how old a signed request's issued_at may be (default an
	// hour).
	MaxAge time.Duration
	// Deliver hands the erasure notices to the dispatcher once they are
	// in the outbox (notice.go); nil leaves them for its next read.
	Deliver func([]store.Delivery)
	// Poll, when set, reads the pending requests again this often: one
	// replica of several does them, and the callback may have reached
	// another, which only records the request (0: only when kicked).
	Poll time.Duration
}

// DefaultMaxAge is how old a signed request may be unless told otherwise.
const DefaultMaxAge = time.Hour

// Service erases people's data and serves the callback and status URLs.
type Service struct {
	d        Deps
	kick     chan struct{}
	hostOnce sync.Once // the warning that status URLs come from the Host
}

// New builds the service; Run does the requested erases.
func New(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.MaxAge <= 0 {
		d.MaxAge = DefaultMaxAge
	}
	return &Service{d: d, kick: make(chan struct{}, 1)}
}

// Erase removes everything Baton keeps about the person of thread k: the
// store's records (store.Erased lists the kinds) and the recent problems
// held in memory; then it tells the apps on the page (notice.go). Running
// it again removes nothing more, and tells them again. An erase whose
// notice could not be queued is an error: run it again.
func (s *Service) Erase(ctx context.Context, k store.ThreadKey) (store.Erased, error) {
	if !messenger.ValidID(k.Page) || !messenger.ValidID(k.PSID) {
		return store.Erased{}, fmt.Errorf("erase %s: page and PSID must be Meta ids (1 to 20 digits)", k)
	}
	erased, err := store.Erase(ctx, s.d.Store, k)
	if s.d.Errors != nil {
		s.d.Errors.Forget(k.Page, k.PSID)
	}
	if err != nil {
		return erased, err
	}
	s.d.Log.Info("person's data erased", zap.String("page", k.Page), zap.Int("records", erased.Total()))
	// The erase is done and durable: telling the apps must not depend on
	// whoever asked still waiting.
	if err := s.notify(context.WithoutCancel(ctx), k); err != nil {
		return erased, fmt.Errorf("erase %s: done, but the apps were not told: %w", k, err)
	}
	return erased, nil
}

// maxRetry bounds the wait before a failed erase is tried again.
const maxRetry = 5 * time.Minute

// Run does the pending deletion requests, those left unfinished by the
// last run first, then each new one as the callback records it, until
// ctx ends. A request whose erase fails stays pending and is tried again
// with backoff.
func (s *Service) Run(ctx context.Context) error {
	failures := 0
	for {
		var retry <-chan time.Time
		if err := s.runPending(ctx); err != nil && ctx.Err() == nil {
			failures++
			wait := min(time.Second<<min(failures, 10), maxRetry)
			s.d.Log.Error("deletion request not done, will retry", zap.Duration("in", wait), zap.Error(err))
			retry = s.d.Clock.After(wait)
		} else {
			failures = 0
		}
		var poll <-chan time.Time
		if s.d.Poll > 0 {
			poll = s.d.Clock.After(s.d.Poll)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-retry:
		case <-poll:
		}
	}
}

// runPending does every pending request, and returns the first failure.
func (s *Service) runPending(ctx context.Context) error {
	var pending []store.Deletion
	if err := s.d.Store.View(func(tx store.ReadTx) error {
		var err error
		pending, err = tx.Deletions(store.DeletionPending, 0)
		return err
	}); err != nil {
		return fmt.Errorf("list deletion requests: %w", err)
	}
	var first error
	for _, d := range pending {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.do(ctx, d); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// do erases the person of one request and records the outcome: done with
// what went, without the user id; or still pending with the error.
func (s *Service) do(ctx context.Context, d store.Deletion) error {
	a := s.d.Topology.App(d.App)
	if a == nil {
		// The app left the config: what it received stays until an
		// operator erases it (baton erase); the request says why.
		return s.settle(d, nil, fmt.Errorf("app %q is no longer in the config", d.App))
	}
	keys, matched := s.match(ctx, a, d.UserID)
	// A run stopped (a shutdown, a reload) is no failure, and a match cut
	// short is no answer of Meta's: the request stays as it was, and the
	// next run matches and erases again (an erase repeats safely).
	if err := ctx.Err(); err != nil {
		return err
	}
	var total store.Erased
	threads := 0
	for _, k := range keys {
		e, err := s.Erase(ctx, k)
		total.Add(e)
		if e.Total() > 0 {
			threads++
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			d.Erased = total
			return s.settle(d, nil, err)
		}
	}
	d.Threads, d.Erased, d.Matched = threads, total, matched
	return s.settle(d, &total, nil)
}

// settle writes the request's outcome: done when erased is set, else the
// failure, and returns the failure.
func (s *Service) settle(d store.Deletion, erased *store.Erased, failure error) error {
	if erased != nil {
		d.Status, d.DoneAt, d.UserID, d.LastError = store.DeletionDone, s.d.Clock.Now(), "", ""
	} else {
		d.Attempts++
		d.LastError = failure.Error()
	}
	err := s.d.Store.Update(context.Background(), func(tx store.Tx) error { return tx.PutDeletion(d) })
	if err != nil {
		return fmt.Errorf("deletion request %s: record outcome: %w", d.Code, err)
	}
	if erased != nil {
		s.d.Log.Info("deletion request done", zap.String("code", d.Code), zap.String("app", d.App),
			zap.Int("threads", d.Threads), zap.Int("records", erased.Total()))
	}
	if failure != nil {
		return fmt.Errorf("deletion request %s: %w", d.Code, failure)
	}
	return nil
}

// wake makes Run look for new requests.
func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}
