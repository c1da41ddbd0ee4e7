package p2p

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// loopbackConfig is Default with every feature that reaches beyond 127.0.0.1 off.
func loopbackConfig() Config {
	cfg := Default()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS, cfg.AutoNAT, cfg.Relay, cfg.HolePunching, cfg.NATPortMap = false, false, false, false, false
	cfg.DHTMode = "server"
	cfg.ConnLow, cfg.ConnHigh = 100, 200
	// Short, so that a gossip loss is repaired well within the tests' bounds.
	cfg.RepublishInterval = configfile.Duration(10 * time.Second)
	cfg.SnapshotInterval = configfile.Duration(200 * time.Millisecond)
	cfg.RecordTTL = configfile.Duration(time.Minute)
	cfg.OfferTimeout = configfile.Duration(5 * time.Second)
	return cfg
}

// rig is a fake capacity source whose free GPU count a test can change.
type rig struct {
	mu  sync.Mutex
	cap capacity.Capacity
}

func newRig(i int) *rig {
	return &rig{cap: capacity.Capacity{
		GPUs:            []capacity.GPU{{Model: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, Count: 8}},
		Score:           capacity.Score{Overall: 1000 + float64(i)},
		PricePerGPUHour: fmt.Sprint(1_000_000 + i),
		FreeGPUs:        8,
		JobKinds:        []string{"train"},
	}}
}

func (r *rig) snapshot(context.Context) (capacity.Capacity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cap, nil
}

func (r *rig) setFree(n int) {
	r.mu.Lock()
	r.cap.FreeGPUs = n
	r.mu.Unlock()
}

type testNode struct {
	*Network
	rig *rig
	reg *prometheus.Registry
	dir string
	// stopWithin bounds how long Run may take to return after the test ends; 0: 20s.
	stopWithin time.Duration
}

var testLogLevel = func() slog.Level {
	if os.Getenv("GPUNODE_P2P_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}()

type tlog struct{ t testing.TB }

func (l tlog) Write(b []byte) (int, error) { l.t.Log(strings.TrimSpace(string(b))); return len(b), nil }

type nodeOpt func(*Config, *Deps)

// startNode starts a network on loopback; it stops when the test ends.
func startNode(t testing.TB, i int, bootstrap []string, opts ...nodeOpt) *testNode {
	t.Helper()
	cfg := loopbackConfig()
	cfg.BootstrapPeers = bootstrap
	eth, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{rig: newRig(i), reg: prometheus.NewRegistry(), dir: t.TempDir()}
	deps := Deps{DataDir: tn.dir, EthKey: eth, Snapshot: tn.rig.snapshot, Registerer: tn.reg,
		Log: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: testLogLevel})).With("node", i)}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := New(ctx, cfg, deps)
	if err != nil {
		cancel()
		t.Fatalf("node %d: %v", i, err)
	}
	tn.Network = n
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		within := cmp.Or(tn.stopWithin, 20*time.Second)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node %d: run: %v", i, err)
			}
		case <-time.After(within):
			t.Errorf("node %d: Run did not return %s after cancel", i, within)
		}
	})
	return tn
}

// startCluster starts n nodes. Up to 50 nodes, the first three are the others'
// bootstrap peers; in larger clusters node i bootstraps from nodes 0, i/2 and i-1, so
// that three nodes do not take every handshake. Each node is started once it has
// reached a bootstrap peer, so that a loaded machine does not time out many
// handshakes at once.
func startCluster(t testing.TB, n int, opts ...nodeOpt) []*testNode {
	t.Helper()
	var nodes []*testNode
	// A node retries its bootstrap peers with backoff, each dial bounded by 15s; on a
	// machine that many processes share, the handshakes of a cluster's fortieth or
	// fiftieth node have been seen to take that long.
	const reach = 2 * time.Minute
	bootstrap := func(i int) []*testNode {
		if n <= 50 || i <= 3 {
			return nodes[:min(3, i)]
		}
		return []*testNode{nodes[0], nodes[i/2], nodes[i-1]}
	}
	for i := 0; i < n; i++ {
		var boot []string
		for _, b := range bootstrap(i) {
			boot = append(boot, b.Addrs()...)
		}
		nd := startNode(t, i, boot, opts...)
		if i > 0 && !waitFor(reach, func() bool {
			for _, b := range bootstrap(i) {
				if nd.Connected(b.ID()) {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("node %d did not reach a bootstrap peer within %s", i, reach)
		}
		nodes = append(nodes, nd)
	}
	return nodes
}

// waitFor polls cond every 50ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
