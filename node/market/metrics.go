package market

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the chain side's Prometheus collectors.
type Metrics struct {
	up         prometheus.Gauge
	head       prometheus.Gauge
	rpcErrors  prometheus.Counter
	deepReorgs prometheus.Counter
	events     *prometheus.CounterVec
	txs        *prometheus.CounterVec
	bumps      prometheus.Counter
}

// NewMetrics creates and registers the collectors on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		up:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "gpunode_chain_up", Help: "1 if the last chain RPC round succeeded."}),
		head:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "gpunode_chain_head_block", Help: "Latest block number seen."}),
		rpcErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "gpunode_chain_rpc_errors_total", Help: "Failed chain RPC calls (each retry counts) and failed watcher rounds."}),
		deepReorgs: prometheus.NewCounter(prometheus.CounterOpts{Name: "gpunode_chain_deep_reorgs_total", Help: "Reorgs deeper than the confirmation depth."}),
		events:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpunode_chain_events_total", Help: "JobMarket events handled, by event."}, []string{"event"}),
		txs:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpunode_chain_transactions_total", Help: "Transactions sent, by outcome."}, []string{"outcome"}),
		bumps:      prometheus.NewCounter(prometheus.CounterOpts{Name: "gpunode_chain_fee_bumps_total", Help: "Replacements sent with a higher fee for stuck transactions."}),
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.up, m.head, m.rpcErrors, m.deepReorgs, m.events, m.txs, m.bumps}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}
