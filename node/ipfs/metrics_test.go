package ipfs

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	ctx := t.Context()
	h1, h2 := newHost(t), newHost(t)
	a := newNode(t, "", h1, func(c *Config) { c.MaxStorageBytes = 1 << 30 })
	b := newNode(t, "", h2, func(c *Config) { c.MaxStorageBytes = 1 << 30 })
	src := filepath.Join(t.TempDir(), "f")
	writeRandom(t, src, 1<<20, 71) // 4 leaves + 1 root
	res, err := a.Add(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	connect(t, h2, addrInfo(h1))
	if _, err := b.Fetch(ctx, mustCID(t, res.CID)); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP gpunode_ipfs_fetched_blocks_total Blocks of fetched content, by source: network (bitswap) or local (already stored).
# TYPE gpunode_ipfs_fetched_blocks_total counter
gpunode_ipfs_fetched_blocks_total{source="local"} 0
gpunode_ipfs_fetched_blocks_total{source="network"} 5
# HELP gpunode_ipfs_fetches_total Finished fetches, by result.
# TYPE gpunode_ipfs_fetches_total counter
gpunode_ipfs_fetches_total{result="done"} 1
gpunode_ipfs_fetches_total{result="failed"} 0
# HELP gpunode_ipfs_pins Pinned roots, by kind (checkpoint, input).
# TYPE gpunode_ipfs_pins gauge
gpunode_ipfs_pins{kind="checkpoint"} 0
gpunode_ipfs_pins{kind="input"} 1
# HELP gpunode_ipfs_storage_max_bytes Cap on the embedded blockstore (max_storage_bytes).
# TYPE gpunode_ipfs_storage_max_bytes gauge
gpunode_ipfs_storage_max_bytes 1.073741824e+09
`
	if err := testutil.CollectAndCompare(b.Collector(), strings.NewReader(want),
		"gpunode_ipfs_fetched_blocks_total", "gpunode_ipfs_fetches_total", "gpunode_ipfs_pins", "gpunode_ipfs_storage_max_bytes"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(collectorMetric(a, "gpunode_ipfs_added_bytes_total")); got != 1<<20 {
		t.Errorf("added bytes = %v, want %d", got, 1<<20)
	}
	if n, err := testutil.GatherAndCount(registryWith(b), "gpunode_ipfs_storage_bytes"); err != nil || n != 1 {
		t.Errorf("storage gauge: %d series, %v", n, err)
	}
}

func registryWith(n *Node) *prometheus.Registry {
	r := prometheus.NewPedanticRegistry()
	r.MustRegister(n.Collector())
	return r
}

// collectorMetric is the one metric named name from n's collector.
func collectorMetric(n *Node, name string) prometheus.Collector {
	return filtered{n.Collector(), name}
}

type filtered struct {
	c    prometheus.Collector
	name string
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }
func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `"`+f.name+`"`) {
			ch <- m
		}
	}
}
