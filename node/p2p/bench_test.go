package p2p

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// BenchmarkPropagation50 and BenchmarkPropagation200 start n nodes on loopback
// (three bootstrap peers, DHT discovery, gossipsub), wait until every node holds every
// record, measure for 10s what the idle nodes use of the CPUs (printed beside the figure
// while measuring), then have one node after the other publish a new record and measure how long
// until each node (the publisher included) has accepted it. A record not accepted
// within 20s counts as lost. They report the share delivered, the latency
// distribution over all deliveries, the heap held per node after GC and the wall time,
// beside the figures of the code before the propagation fixes.
//
// Every invocation starts its own nodes and publishes 20·b.N records, so run it once:
//
//	go test ./node/p2p -run xxx -bench Propagation -benchtime 1x
func BenchmarkPropagation50(b *testing.B) {
	benchPropagation(b, 50, propagationRef{delivered: 97.0, p95: 299 * time.Millisecond, max: 2500 * time.Millisecond}, nil)
}

// BenchmarkPropagation200: 200 nodes in one process hold both ends of every TCP
// connection among them; with the connection manager at 24..48 connections (well above
// gossipsub's mesh degree of 6..12) they fit in fdsPerNode descriptors each, and gossip
// crosses several hops.
func BenchmarkPropagation200(b *testing.B) {
	benchPropagation(b, 200, propagationRef{}, func(c *Config, _ *Deps) { c.ConnLow, c.ConnHigh = 24, 48 })
}

// propagationRef are the figures measured before the fixes; zero if not measured.
type propagationRef struct {
	delivered float64
	p95, max  time.Duration
}

func benchPropagation(b *testing.B, n int, ref propagationRef, opt nodeOpt) {
	raiseFileLimit(b, uint64(n)*fdsPerNode)
	wall := time.Now()
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

	losses := newLossCounter()
	defer func(orig func(peer.ID) []pubsub.Option) { testPubsubOptions = orig }(testPubsubOptions)
	testPubsubOptions = func(peer.ID) []pubsub.Option { return []pubsub.Option{pubsub.WithRawTracer(losses)} }
	var peak atomic.Int64
	sampling, stopSampling := context.WithCancel(context.Background())
	defer stopSampling()
	go func() {
		for sampling.Err() == nil {
			if f := int64(openFiles()); f > peak.Load() {
				peak.Store(f)
			}
			select {
			case <-sampling.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	nodes := startCluster(b, n, func(c *Config, d *Deps) {
		d.OnRecord = onRecord
		// Every node republishes at the production interval, not the tests' 10s: at 200
		// nodes that would be 20 publications a second, which on this machine's share of
		// two CPUs would measure the republication load rather than the propagation of
		// one record. A record lost by gossip is then repaired only after 2 minutes, so
		// what arrives within 20s arrived by gossip.
		def := Default()
		c.RepublishInterval, c.RecordTTL = def.RepublishInterval, def.RecordTTL
		if opt != nil {
			opt(c, d)
		}
	})
	b.Logf("%d nodes started in %s", n, time.Since(wall).Round(time.Second))
	for _, nd := range nodes {
		// Hundreds of nodes stopping one after the other on a saturated machine each wait
		// for the others' goroutines; a stop is still bounded, more loosely.
		nd.stopWithin = 20*time.Second + time.Duration(n)*250*time.Millisecond
	}
	t0, last := time.Now(), time.Now()
	if !waitFor(120*time.Second+time.Duration(n)*time.Second, func() bool {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			lo, done := n, 0
			for _, nd := range nodes {
				c := nd.Market().Len(time.Now())
				lo = min(lo, c)
				if c == n {
					done++
				}
			}
			b.Logf("%s: %d of %d nodes hold every record, the others at least %d", time.Since(t0).Round(time.Second), done, n, lo)
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
		b.Fatalf("%d nodes did not converge within %s", n, time.Since(t0).Round(time.Second))
	}
	b.Logf("%d nodes converged %s after the last started; %d file descriptors open (peak while starting %d)", n, time.Since(t0).Round(time.Second), openFiles(), peak.Load())
	stopSampling()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	heapPerNode := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
	goroutinesPerNode := float64(runtime.NumGoroutine()-goroutines) / float64(n)

	var lat []time.Duration
	expected := 0
	ctx := context.Background()
	startLosses := losses.take()
	// What the nodes use of the machine while nobody publishes: their gossipsub
	// heartbeats, DHT upkeep and connection management.
	idle0, idleWall := processCPU(), time.Now()
	<-time.After(10 * time.Second) // a measuring window, not a wait for a condition
	idleCPU := float64(processCPU()-idle0) / float64(time.Since(idleWall))
	cpu0, wall0 := processCPU(), time.Now()
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
			return len(arrived[k]) >= n // the others and the publisher itself
		})
		expected += n
		mu.Lock()
		if got := len(arrived[k]); got < n {
			superseded := 0
			for _, other := range nodes {
				if e, ok := other.Market().Get(nd.ID(), time.Now()); ok && e.Record.Seq > k.seq {
					superseded++
				}
			}
			b.Logf("record %d of node %d reached %d of %d nodes within 20s (%d hold a newer one)", i, (i*7)%n, got, n, superseded)
		}
		for _, at := range arrived[k] {
			lat = append(lat, at.Sub(start))
		}
		mu.Unlock()
	}
	b.StopTimer()
	cpu, measured := processCPU()-cpu0, time.Since(wall0)
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
	fmt.Printf("propagation over %d nodes, %d records, %d of %d deliveries (%.1f%% within 20s): p50 %s  p95 %s  max %s; heap %.1f MiB/node, %.0f goroutines/node; wall %s\n",
		n, 20*b.N, len(lat), expected, delivered, pct(0.50), pct(0.95), lat[len(lat)-1], heapPerNode/(1<<20), goroutinesPerNode, time.Since(wall).Round(time.Second))
	fmt.Printf("  while measuring the process used %.2f of the machine's %d CPUs (%.2f before, with no record published); load average %s\n",
		float64(cpu)/float64(measured), runtime.NumCPU(), idleCPU, loadAverage())
	fmt.Printf("  gossipsub losses while starting: %s\n  while measuring: %s\n", startLosses, losses.take())
	if ref.delivered > 0 {
		fmt.Printf("  reference (before the fixes): %.1f%% within 20s, p95 %s, max %s; goal: 100%%, p95 <= 500ms\n", ref.delivered, ref.p95, ref.max)
	} else {
		fmt.Printf("  reference: not measured before the fixes at %d nodes; goal: 100%%, p95 <= 500ms\n", n)
	}
}

// fdsPerNode is what one in-process node may hold in file descriptors at the peak of a
// cluster's start: its listeners, and one descriptor for each of its TCP connections
// (both ends live in this process), up to about twice BenchmarkPropagation200's
// connection manager high water before the manager trims them. The peak is printed.
const fdsPerNode = 100

// raiseFileLimit lifts the process's descriptor limit to need: the soft limit up to the
// hard one, and the hard one too when the process may (root). A limit that stays below
// need fails the benchmark at once with the command that fixes it, instead of "too many
// open files" from a node deep into the start.
func raiseFileLimit(b *testing.B, need uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("read the descriptor limit: %v", err)
	}
	if lim.Cur >= need {
		return
	}
	want := lim
	want.Cur = min(need, lim.Max)
	if lim.Max < need {
		want.Cur, want.Max = need, need
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil && want.Max != lim.Max {
		want.Cur, want.Max = lim.Max, lim.Max // not allowed to raise the hard limit
		err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < need {
		b.Fatalf("this benchmark needs %d file descriptors; the limit is %d (hard %d): run it as root or after `ulimit -n %d`", need, lim.Cur, lim.Max, need)
	}
	b.Logf("descriptor limit raised to %d", lim.Cur)
}

// openFiles counts the process's open file descriptors.
func openFiles() int {
	fds, _ := os.ReadDir("/proc/self/fd")
	return len(fds)
}

// processCPU is the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is the machine's 1-minute load average, "?" where it cannot be read.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
