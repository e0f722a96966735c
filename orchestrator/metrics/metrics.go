// Package metrics declares Baton's Prometheus series in one place, on a
// registry of their own so that a process (a test) can run several
// Batons. Each part is handed the set and updates its own series.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/batonhq/baton/store"
)

// Set is every series Baton exports.
type Set struct {
	Registry *prometheus.Registry
	Requests *prometheus.CounterVec // webhook requests by app and status code
	// BodyBudgetRefusals are webhooks answered 503 because
	// webhooks.max_inflight_bytes was in use, by (hosted) app.
	BodyBudgetRefusals *prometheus.CounterVec
	Events             *prometheus.CounterVec   // webhook events by app and result
	AckSeconds         prometheus.Histogram     // time from request to durable ack
	Deliveries         *prometheus.CounterVec   // delivery attempts by app and result
	DeliverSec         *prometheus.HistogramVec // bot answer time by app
	DeliveryLag        *prometheus.HistogramVec // webhook stored to bot's 2xx, by app
	GraphCalls         *prometheus.CounterVec   // Graph calls by op and result
	Transitions        *prometheus.CounterVec   // ownership changes by cause
	Errors             *prometheus.CounterVec   // recent errors by kind
	SendRefusals       *prometheus.CounterVec   // sends refused by the send policy, by app and code
	Rules              *prometheus.CounterVec   // rule firings by rule and result
	Pruned             prometheus.Counter       // journal entries past their retention
	Reloads            *prometheus.CounterVec   // config reloads by result
	ReloadPause        prometheus.Histogram     // how long a reload held requests
}

// New registers the series, with Go's runtime and process collectors.
func New() *Set {
	m := &Set{Registry: prometheus.NewRegistry()}
	m.Requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_webhook_requests_total", Help: "Webhook requests by app and HTTP status."}, []string{"app", "code"})
	m.BodyBudgetRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_webhook_body_budget_refusals_total",
		Help: "Webhooks answered 503 because webhooks.max_inflight_bytes was in use by other bodies, by app."}, []string{"app"})
	m.Events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_webhook_events_total", Help: "Webhook events by app and result (accepted, duplicate, unusable)."}, []string{"app", "result"})
	m.AckSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_webhook_ack_seconds", Help: "Time from receiving a webhook to its durable acknowledgement.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}})
	m.Deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_deliveries_total", Help: "Delivery attempts by app and result (delivered, retry, dead)."}, []string{"app", "result"})
	m.DeliverSec = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_delivery_seconds", Help: "Bot answer time by app.", Buckets: prometheus.DefBuckets}, []string{"app"})
	// The lag is what a person waits on Baton and the bot: an event's
	// time in the outbox (retries included) until its bot took it.
	m.DeliveryLag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_delivery_lag_seconds", Help: "Time from a delivery's creation (its webhook stored) to its bot's 2xx, retries included, by app.",
		Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600}}, []string{"app"})
	m.GraphCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_graph_calls_total", Help: "Graph API calls by operation and result."}, []string{"op", "result"})
	m.Transitions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_thread_transitions_total", Help: "Thread ownership changes by cause."}, []string{"cause"})
	m.Errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_errors_total", Help: "Errors shown in /admin/errors, by kind."}, []string{"kind"})
	m.SendRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_send_refusals_total", Help: "Sends refused before Meta, by app and Meta error code/subcode."}, []string{"app", "code"})
	m.Rules = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_rule_firings_total", Help: "Handover rule firings by rule and result (armed, fired, held, refused, skipped, failed)."}, []string{"rule", "result"})
	m.Pruned = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_journal_pruned_total", Help: "Journal entries deleted past webhooks.journal_retention."})
	m.Reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_config_reloads_total", Help: "Config reloads (SIGHUP) by result (applied, unchanged, invalid, restart_needed, failed, busy)."}, []string{"result"})
	m.ReloadPause = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_config_reload_pause_seconds", Help: "How long a config reload held new requests while it swapped the running parts.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}})
	m.Registry.MustRegister(m.Reloads, m.ReloadPause, m.Pruned, m.Rules, m.SendRefusals, m.Requests, m.BodyBudgetRefusals, m.Events, m.AckSeconds, m.Deliveries, m.DeliverSec, m.DeliveryLag, m.GraphCalls, m.Transitions, m.Errors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewBuildInfoCollector())
	return m
}

// RegisterBodyBudget adds baton_webhook_body_bytes_in_flight: the shares
// of webhooks.max_inflight_bytes taken now.
func (m *Set) RegisterBodyBudget(inFlight func() int64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_webhook_body_bytes_in_flight",
		Help: "Bytes of webhooks.max_inflight_bytes taken by webhook bodies being read or handled now."}, func() float64 { return float64(inFlight()) }))
}

// RegisterReady adds baton_ready: 1 once ready is closed (Baton recovered
// its work and runs, as /readyz says), 0 before.
func (m *Set) RegisterReady(ready func() <-chan struct{}) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_ready", Help: "1 once Baton recovered its work and runs (/readyz answers 200), 0 before."},
		func() float64 {
			select {
			case <-ready():
				return 1
			default:
				return 0
			}
		}))
}

// RegisterBots adds baton_bot_failing_seconds for each hosted app: how
// long ago its oldest failing delivery was created (failingSince), 0 while
// its deliveries succeed. A bot that is down shows a growing number, which
// the outbox counters alone do not: nothing is delivered, nothing counted.
func (m *Set) RegisterBots(apps func() []string, failingSince func(app string) (time.Time, bool), now func() time.Time) {
	m.Registry.MustRegister(&botsCollector{apps: apps, failingSince: failingSince, now: now,
		desc: prometheus.NewDesc("baton_bot_failing_seconds", "Age of the bot's oldest failing delivery; 0 while its deliveries succeed.", []string{"app"}, nil)})
}

// botsCollector reports each hosted app's failing age. The apps are asked
// for at each scrape: a reload may add or remove one.
type botsCollector struct {
	apps         func() []string
	failingSince func(app string) (time.Time, bool)
	now          func() time.Time
	desc         *prometheus.Desc
}

func (c *botsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *botsCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, app := range c.apps() {
		age := 0.0
		if since, failing := c.failingSince(app); failing {
			age = max(now.Sub(since).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, age, app)
	}
}

// CommitStatser is a store that counts its group commits (store/bolt).
type CommitStatser interface {
	CommitStats() store.CommitStats
}

// RegisterStore adds the series read from the store: threads by state,
// and the group commit's counters when the store keeps them.
func (m *Set) RegisterStore(s store.Store) {
	if cs, ok := s.(CommitStatser); ok {
		m.Registry.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baton_store_commits_total", Help: "Store transactions committed; concurrent writes share one."},
				func() float64 { return float64(cs.CommitStats().Commits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baton_store_writes_total", Help: "Store write functions run (several per commit under load)."},
				func() float64 { return float64(cs.CommitStats().Calls) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baton_store_commit_seconds_total", Help: "Time spent in store transactions, fsync included."},
				func() float64 { return cs.CommitStats().Commit.Seconds() }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baton_store_apply_seconds_total", Help: "Of that, time running the writes before the commit to disk."},
				func() float64 { return cs.CommitStats().Apply.Seconds() }),
		)
	}
	m.Registry.MustRegister(&threadsCollector{s: s, desc: prometheus.NewDesc("baton_threads", "Threads by control state.", []string{"state"}, nil)})
}

// RegisterPending adds the outbox gauge, read from the dispatcher.
func (m *Set) RegisterPending(pending func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_deliveries_pending", Help: "Deliveries in the outbox."},
		func() float64 { return float64(pending()) }))
}

// threadsCollector reports threads by state from the store's counters.
type threadsCollector struct {
	s    store.Store
	desc *prometheus.Desc
}

func (c *threadsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *threadsCollector) Collect(ch chan<- prometheus.Metric) {
	var counts map[string]int
	if err := c.s.View(func(tx store.ReadTx) error {
		var err error
		counts, err = tx.CountThreads()
		return err
	}); err != nil {
		return
	}
	for _, st := range []string{"idle", "primary", "secondary"} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}
