package market

import (
	"context"
	"math/big"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the chain side's Prometheus collectors.
type Metrics struct {
	up         prometheus.Gauge
	head       prometheus.Gauge
	rpcErrors  prometheus.Counter
	deepReorgs prometheus.Counter
	events     *prometheus.CounterVec
	txs        *prometheus.CounterVec
	bumps      prometheus.Counter
	balance    walletBalance
}

// walletBalance reports the node's account balance at scrape time, so an operator is
// warned before the node runs out of gas money. A chain read costs one RPC call, so the
// value is kept for balanceMaxAge; a failed read leaves the series out (gpunode_chain_up
// says why).
type walletBalance struct {
	mu   sync.Mutex
	read func(context.Context) (*big.Int, error) // nil: no account (watch-only)
	at   time.Time
	wei  float64
	ok   bool
}

const balanceMaxAge = 30 * time.Second

var descWalletBalance = prometheus.NewDesc("gpunode_wallet_balance_wei",
	"Balance of the node's account on the chain (gas money), read at scrape time, at most every 30s.", nil, nil)

// watch makes the collector read the account's balance with read.
func (b *walletBalance) watch(read func(context.Context) (*big.Int, error)) {
	b.mu.Lock()
	b.read, b.at, b.ok = read, time.Time{}, false
	b.mu.Unlock()
}

func (b *walletBalance) collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.read == nil {
		return
	}
	if time.Since(b.at) >= balanceMaxAge {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		wei, err := b.read(ctx)
		cancel()
		b.at, b.ok = time.Now(), err == nil
		if err == nil {
			b.wei, _ = new(big.Float).SetInt(wei).Float64()
		}
	}
	if b.ok {
		ch <- prometheus.MustNewConstMetric(descWalletBalance, prometheus.GaugeValue, b.wei)
	}
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
	ch <- descWalletBalance
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
	m.balance.collect(ch)
}
