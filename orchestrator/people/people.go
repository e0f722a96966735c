// Package people learns what the console and the transcript search show
// of a person: their name, asked once of Meta's User Profile API (GET
// /{psid}?fields=name with the page's first hosted app's token) after
// ingress recorded their first message, when webhooks.learn_names is on.
// A name is stored beside the transcript and erased with it.
package people

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/clock"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
	"github.com/batonhq/baton/store"
)

// Graph is the one call the learner makes (messenger.Client.RawBody).
type Graph interface {
	RawBody(ctx context.Context, method string, cred messenger.Credentials, edge string, q url.Values, contentType string, payload []byte) (int, []byte, error)
}

// Deps are what the learner needs.
type Deps struct {
	Store    store.Store
	Topology *topology.Topology
	Graph    Graph
	Clock    clock.Clock
	Log      *zap.Logger
}

// queueSize bounds the people waiting to be asked about: past it a new
// person is not asked now, and is asked at their next message (nothing is
// stored of them until Meta answers).
const queueSize = 256

// callTimeout bounds one profile call.
const callTimeout = 10 * time.Second

// Learner asks Meta for new people's names, one at a time.
type Learner struct {
	d     Deps
	queue chan store.ThreadKey
	mu    sync.Mutex
	asked map[store.ThreadKey]bool // queued or being asked
}

// New builds a learner; Run does the asking.
func New(d Deps) *Learner {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	return &Learner{d: d, queue: make(chan store.ThreadKey, queueSize), asked: map[store.ThreadKey]bool{}}
}

// Learn queues a person to ask Meta about; it never blocks (ingress calls
// it after its commit).
func (l *Learner) Learn(k store.ThreadKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.asked[k] {
		return
	}
	select {
	case l.queue <- k:
		l.asked[k] = true
	default:
	}
}

// Run asks about the queued people until ctx ends.
func (l *Learner) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-l.queue:
			l.learn(ctx, k)
			l.mu.Lock()
			delete(l.asked, k)
			l.mu.Unlock()
		}
	}
}

// learn asks Meta for k's name and stores it. Meta's refusal (a person
// who blocked the page, a token without the permission) is stored as a
// person without a name, so that Baton does not ask at every message; a
// failure to reach Meta is not, so that the next message asks again.
func (l *Learner) learn(ctx context.Context, k store.ThreadKey) {
	p := l.d.Topology.Page(k.Page)
	if p == nil {
		return
	}
	a := p.FirstActor()
	if a == nil {
		return
	}
	cred, _ := p.Credentials(a)
	cred.PageID = messenger.ID(k.PSID) // the node asked about is the person
	fields := "name"
	if p.Instagram {
		fields = "name,username"
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	status, body, err := l.d.Graph.RawBody(cctx, http.MethodGet, cred, "", url.Values{"fields": {fields}}, "", nil)
	cancel()
	if err != nil || status >= 500 || status == http.StatusTooManyRequests {
		l.d.Log.Debug("profile not read; asked again at the next message", zap.String("page", k.Page), zap.Int("status", status), zap.Error(err))
		return
	}
	person := store.Person{ThreadKey: k, LearntAt: l.d.Clock.Now(), LearntVia: "profile"}
	if status == http.StatusOK {
		var prof struct {
			Name     string `json:"name"`
			Username string `json:"username"`
		}
		if json.Unmarshal(body, &prof) == nil {
			person.Name = prof.Name
			if person.Name == "" {
				person.Name = prof.Username
			}
		}
	}
	if len(person.Name) > 200 {
		person.Name = strings.ToValidUTF8(person.Name[:200], "")
	}
	err = l.d.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Person(k); err == nil {
			return nil // learnt meanwhile
		}
		// Asked because of a message in the transcript: none there any
		// more means the person was erased while Meta answered (or the
		// retention took it), and their name must not come back.
		if lines, _, err := tx.Transcript(k, "", 1); err != nil || len(lines) == 0 {
			return err
		}
		return tx.PutPerson(person)
	})
	if err != nil {
		l.d.Log.Warn("person's name not stored", zap.String("page", k.Page), zap.Error(err))
	}
}
