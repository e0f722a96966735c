package orchestrator

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
)

// metrics are Baton's Prometheus series, on a registry of their own so
// that tests can build several Orchestrators in one process.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec   // webhook requests by app and status code
	events       *prometheus.CounterVec   // webhook events by app and result
	ackSeconds   prometheus.Histogram     // time from request to durable ack
	deliveries   *prometheus.CounterVec   // delivery attempts by app and result
	deliverSec   *prometheus.HistogramVec // bot answer time by app
	graphCalls   *prometheus.CounterVec   // Graph calls by op and result
	transits     *prometheus.CounterVec   // ownership changes by cause
	errors       *prometheus.CounterVec   // recent errors by kind
	sendRefusals *prometheus.CounterVec   // sends refused by the send policy, by app and code
	rules        *prometheus.CounterVec   // rule firings by rule and result
	pruned       prometheus.Counter       // journal entries past their retention
	pending      prometheus.GaugeFunc
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_webhook_requests_total", Help: "Webhook requests by app and HTTP status."}, []string{"app", "code"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_webhook_events_total", Help: "Webhook events by app and result (accepted, duplicate, unusable)."}, []string{"app", "result"})
	m.ackSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_webhook_ack_seconds", Help: "Time from receiving a webhook to its durable acknowledgement.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_deliveries_total", Help: "Delivery attempts by app and result (delivered, retry, dead)."}, []string{"app", "result"})
	m.deliverSec = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_delivery_seconds", Help: "Bot answer time by app.", Buckets: prometheus.DefBuckets}, []string{"app"})
	m.graphCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_graph_calls_total", Help: "Graph API calls by operation and result."}, []string{"op", "result"})
	m.transits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_thread_transitions_total", Help: "Thread ownership changes by cause."}, []string{"cause"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_errors_total", Help: "Errors shown in /admin/errors, by kind."}, []string{"kind"})
	m.sendRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_send_refusals_total", Help: "Sends refused before Meta, by app and Meta error code/subcode."}, []string{"app", "code"})
	m.rules = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_rule_firings_total", Help: "Handover rule firings by rule and result (armed, fired, held, refused, skipped, failed)."}, []string{"rule", "result"})
	m.pruned = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_journal_pruned_total", Help: "Journal entries deleted past webhooks.journal_retention."})
	m.reg.MustRegister(m.pruned, m.rules, m.sendRefusals, m.requests, m.events, m.ackSeconds, m.deliveries, m.deliverSec, m.graphCalls, m.transits, m.errors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
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

// commitStatser is a store that counts its group commits (store/bolt).
type commitStatser interface {
	Stats() *bolt.CommitStats
}

func (o *Orchestrator) registerStoreMetrics() {
	if cs, ok := o.store.(commitStatser); ok {
		st := cs.Stats()
		o.metrics.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baton_store_commits_total", Help: "Store transactions committed; concurrent writes share one."},
				func() float64 { return float64(st.Commits.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baton_store_writes_total", Help: "Store write functions run (several per commit under load)."},
				func() float64 { return float64(st.Calls.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baton_store_commit_seconds_total", Help: "Time spent in store transactions, fsync included."},
				func() float64 { return float64(st.Nanos.Load()) / 1e9 }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baton_store_apply_seconds_total", Help: "Of that, time running the writes before the commit to disk."},
				func() float64 { return float64(st.FnNanos.Load()) / 1e9 }),
		)
	}
	o.metrics.reg.MustRegister(&threadsCollector{s: o.store, desc: prometheus.NewDesc("baton_threads", "Threads by control state.", []string{"state"}, nil)})
	o.metrics.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_deliveries_pending", Help: "Deliveries in the outbox."},
		func() float64 { return float64(o.dispatcher.pendingCount()) })
	o.metrics.reg.MustRegister(o.metrics.pending)
}
