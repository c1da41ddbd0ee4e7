package p2p

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// BenchmarkPropagation50 starts 50 nodes on loopback (one bootstrap peer, DHT
// discovery, gossipsub) and, per iteration, has one node publish a new record and
// measures how long until each of the other 49 has accepted it. It reports the
// latency distribution over all deliveries and the heap held per node.
//
// Every invocation starts its own 50 nodes and publishes 20·b.N records, so run it
// once:
//
//	go test ./node/p2p -run xxx -bench Propagation50 -benchtime 1x
func BenchmarkPropagation50(b *testing.B) {
	const n = 50
	type key struct {
		peer string
		seq  uint64
	}
	var (
		mu      sync.Mutex
		arrived = map[key][]time.Time{}
	)
	onRecord := func(rec *capacity.Record, at time.Time) {
		mu.Lock()
		k := key{rec.PeerID, rec.Seq}
		arrived[k] = append(arrived[k], at)
		mu.Unlock()
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	nodes := startCluster(b, n, func(_ *Config, d *Deps) { d.OnRecord = onRecord })
	t0, last := time.Now(), time.Now()
	if !waitFor(120*time.Second, func() bool {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			var counts []int
			for _, nd := range nodes {
				counts = append(counts, nd.Market().Len(time.Now()))
			}
			b.Logf("%s: records per node %v", time.Since(t0).Round(time.Second), counts)
		}
		for _, nd := range nodes {
			if nd.Market().Len(time.Now()) != n {
				return false
			}
		}
		return true
	}) {
		for i, nd := range nodes {
			if nd.Market().Len(time.Now()) < n {
				var protos []string
				for _, c := range nd.Host().Network().ConnsToPeer(nodes[0].ID()) {
					for _, s := range c.GetStreams() {
						protos = append(protos, string(s.Protocol())+"/"+s.Stat().Direction.String())
					}
				}
				b.Logf("node %d: %d records, %d conns, %d topic peers, streams to node 0: %v",
					i, nd.Market().Len(time.Now()), len(nd.Host().Network().Peers()), len(nd.topic.ListPeers()), protos)
			}
		}
		b.Fatalf("%d nodes did not converge within 120s", n)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	heapPerNode := float64(after.HeapAlloc-before.HeapAlloc) / n
	goroutinesPerNode := float64(runtime.NumGoroutine()-goroutines) / n

	var lat []time.Duration
	expected := 0
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < 20*b.N; i++ {
		nd := nodes[(i*7)%n]
		start := time.Now()
		if err := nd.publish(ctx, true); err != nil {
			b.Fatal(err)
		}
		nd.mu.Lock()
		k := key{nd.ID().String(), nd.seq}
		nd.mu.Unlock()
		// A delivery that takes longer than 20s counts as lost.
		waitFor(20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(arrived[k]) >= n // the other 49 and the publisher itself
		})
		expected += n
		mu.Lock()
		for _, at := range arrived[k] {
			lat = append(lat, at.Sub(start))
		}
		mu.Unlock()
	}
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatal("no record was delivered")
	}
	slices.Sort(lat)
	delivered := 100 * float64(len(lat)) / float64(expected)
	b.ReportMetric(delivered, "delivered-%")
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(pct(0.50)), "p50-ms")
	b.ReportMetric(ms(pct(0.95)), "p95-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(heapPerNode/(1<<20), "heap-MiB/node")
	b.ReportMetric(goroutinesPerNode, "goroutines/node")
	fmt.Printf("propagation over %d nodes, %d records, %d deliveries (%.1f%% within 20s): p50 %s  p95 %s  max %s; heap %.1f MiB/node, %.0f goroutines/node\n",
		n, 20*b.N, len(lat), delivered, pct(0.50), pct(0.95), lat[len(lat)-1], heapPerNode/(1<<20), goroutinesPerNode)
}
