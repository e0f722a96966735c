package forward

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batonhq/baton/orchestrator/apierr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testSecret = []byte("cluster-secret-0123456789abcdef")

// ownerTable is a replica's view of who holds which shard, as a test
// sets it.
type ownerTable struct {
	mu sync.Mutex
	m  map[int][2]string
}

func (o *ownerTable) Owner(shard int) (string, string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.m[shard]
	return e[0], e[1], ok
}

func (o *ownerTable) set(shard int, id, addr string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[shard] = [2]string{id, addr}
}

// replica is one Baton replica of a test on loopback sockets: an API
// handler that acts only for its own shards (else 421 with the shard),
// behind Wrap on its public listener and behind Internal on its internal
// one.
type replica struct {
	id       string
	f        *Forwarder
	owners   *ownerTable
	public   *httptest.Server
	internal *httptest.Server
	logs     *observer.ObservedLogs
	reg      *prometheus.Registry

	mu         sync.Mutex
	mine       map[int]bool
	lastRemote string // the client address the handler saw on its last 421

	next chan struct{} // a streaming answer's next event

	internalHits atomic.Int64 // requests that reached the internal listener
	served       atomic.Int64 // requests the handler answered itself (not 421)
}

// echo is what the handler answers for a thread it acts for: what it
// was asked.
type echo struct {
	ServedBy, Method, URI, Host, Remote, ForwardedBy string
	Auth, CSRF, Hop, Client                          string
	Body                                             []byte
	Form                                             url.Values
}

type replicaOption func(*Options, *replica)

// newReplica starts a replica; wrapInternal puts Wrap inside Internal
// too, as a careless wiring would.
func newReplica(t *testing.T, id string, maxBody int64, wrapInternal bool, opts ...replicaOption) *replica {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	rp := &replica{id: id, owners: &ownerTable{m: map[int][2]string{}}, mine: map[int]bool{}, next: make(chan struct{}), logs: logs, reg: prometheus.NewRegistry()}
	// One try: the tests of waiting for an owner set their own wait.
	opt := Options{Self: id, Secret: testSecret, Owners: rp.owners, MaxBody: maxBody, Log: zap.New(core), Registerer: rp.reg, OwnerWait: -1}
	for _, o := range opts {
		o(&opt, rp)
	}
	f, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	rp.f = f
	h := rp.handler()
	rp.public = httptest.NewServer(f.Wrap(h))
	inner := h
	if wrapInternal {
		inner = f.Wrap(h)
	}
	counted := f.Internal(inner)
	rp.internal = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.internalHits.Add(1)
		counted.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		rp.public.Close()
		rp.internal.Close()
		f.Close()
	})
	return rp
}

func (rp *replica) own(shards ...int) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for _, s := range shards {
		rp.mine[s] = true
	}
}

func (rp *replica) owns(shard int) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.mine[shard]
}

// handler is the API: /v1/threads/{shard}/{op} acts for its shards and
// answers 421 for the rest, having read the body as ?read= says (all,
// form, none, or a number of bytes), like a handler that parses the
// request before it finds the thread another replica's.
func (rp *replica) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/threads/{shard}/{op}", func(w http.ResponseWriter, r *http.Request) {
		shard, _ := strconv.Atoi(r.PathValue("shard"))
		if !rp.owns(shard) {
			switch read := r.URL.Query().Get("read"); read {
			case "form":
				_ = r.ParseForm()
			case "none":
			case "":
				_, _ = io.ReadAll(r.Body)
			default:
				n, _ := strconv.Atoi(read)
				_, _ = io.ReadFull(r.Body, make([]byte, n))
				_ = r.Body.Close()
			}
			rp.mu.Lock()
			rp.lastRemote = r.RemoteAddr
			rp.mu.Unlock()
			w.Header().Set(apierr.ShardHeader, strconv.Itoa(shard))
			w.Header().Set("X-Junk", "of the 421")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMisdirectedRequest)
			_, _ = io.WriteString(w, `{"error":{"code":"not_owner"}}`)
			return
		}
		rp.served.Add(1)
		body, _ := io.ReadAll(r.Body)
		e := echo{ServedBy: rp.id, Method: r.Method, URI: r.RequestURI, Host: r.Host, Remote: r.RemoteAddr, Body: body,
			Auth: r.Header.Get("Authorization"), CSRF: r.Header.Get("X-Baton-CSRF"), Hop: r.Header.Get("X-Hop"), Client: r.Header.Get(HeaderClient)}
		e.ForwardedBy, _ = ForwardedBy(r.Context())
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			e.Form, _ = url.ParseQuery(string(body))
		}
		w.Header().Set("X-Served-By", rp.id)
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(e)
	})
	mux.HandleFunc("/v1/stream/{shard}", func(w http.ResponseWriter, r *http.Request) {
		shard, _ := strconv.Atoi(r.PathValue("shard"))
		if !rp.owns(shard) {
			w.Header().Set(apierr.ShardHeader, strconv.Itoa(shard))
			w.WriteHeader(http.StatusMisdirectedRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			_, _ = io.WriteString(w, "data: "+strconv.Itoa(i)+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-rp.next: // the test read this event: the next one
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("/plain421", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusMisdirectedRequest) // no shard: not Baton's to forward
		_, _ = io.WriteString(w, "not ours")
	})
	return mux
}

// forwarded is the count of an outcome of this replica's forwarding.
func (rp *replica) forwarded(outcome string) float64 {
	return testutil.ToFloat64(rp.f.forwarded.WithLabelValues(outcome))
}

// noSecretsLogged fails t if any log line of rp holds one of secrets.
func (rp *replica) noSecretsLogged(t *testing.T, secrets ...string) {
	t.Helper()
	for _, e := range rp.logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + toString(v)
		}
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("%s logged %q: %s", rp.id, s, line)
			}
		}
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// testClient is a test's client, its connections closed at the end.
func testClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}
