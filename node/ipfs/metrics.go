package ipfs

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the component's running totals, read by the collector at scrape time.
type counters struct {
	addedBytes     atomic.Int64
	netBlocks      atomic.Int64
	localBlocks    atomic.Int64
	fetchedBytes   atomic.Int64
	fetchesDone    atomic.Int64
	fetchesFailed  atomic.Int64
	remotePinFails atomic.Int64
}

var (
	descStorage = prometheus.NewDesc("gpunode_ipfs_storage_bytes",
		"Bytes of block data in the embedded blockstore.", nil, nil)
	descStorageMax = prometheus.NewDesc("gpunode_ipfs_storage_max_bytes",
		"Cap on the embedded blockstore (max_storage_bytes).", nil, nil)
	descPins = prometheus.NewDesc("gpunode_ipfs_pins",
		"Pinned roots, by kind (checkpoint, input).", []string{"kind"}, nil)
	descAdded = prometheus.NewDesc("gpunode_ipfs_added_bytes_total",
		"File bytes imported by adds.", nil, nil)
	descBlocks = prometheus.NewDesc("gpunode_ipfs_fetched_blocks_total",
		"Blocks of fetched content, by source: network (bitswap) or local (already stored).", []string{"source"}, nil)
	descFetchedBytes = prometheus.NewDesc("gpunode_ipfs_fetched_bytes_total",
		"Bytes of fetched content's blocks.", nil, nil)
	descFetches = prometheus.NewDesc("gpunode_ipfs_fetches_total",
		"Finished fetches, by result.", []string{"result"}, nil)
	descRemoteFails = prometheus.NewDesc("gpunode_ipfs_remote_pin_failures_total",
		"Requests to the remote pinning service that failed.", nil, nil)
)

// Collector returns a Prometheus collector for the component; register it on the
// node's registry.
func (n *Node) Collector() prometheus.Collector { return collector{n} }

type collector struct{ n *Node }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStorage, descStorageMax, descPins, descAdded, descBlocks,
		descFetchedBytes, descFetches, descRemoteFails} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	n, m := c.n, &c.n.stats
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descStorage, float64(n.StorageBytes()))
	gauge(descStorageMax, float64(n.cfg.MaxStorageBytes))
	kinds := map[string]int{PinCheckpoint: 0, PinInput: 0}
	for _, p := range n.pins.list() {
		kinds[p.Kind]++
	}
	for k, v := range kinds {
		gauge(descPins, float64(v), k)
	}
	counter(descAdded, m.addedBytes.Load())
	counter(descBlocks, m.netBlocks.Load(), "network")
	counter(descBlocks, m.localBlocks.Load(), "local")
	counter(descFetchedBytes, m.fetchedBytes.Load())
	counter(descFetches, m.fetchesDone.Load(), "done")
	counter(descFetches, m.fetchesFailed.Load(), "failed")
	counter(descRemoteFails, m.remotePinFails.Load())
}
