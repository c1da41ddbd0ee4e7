//go:build integration

// The tests here need no external component but take tens of seconds each (many
// hosts, ten thousand records): they run in the full suite, not in make test-unit.

package p2p

import (
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/node/p2p/capacity"
)

func TestTwentyHostsLearnEveryRecord(t *testing.T) {
	const n = 20
	nodes := startCluster(t, n)
	start := time.Now()
	last := time.Now()
	ok := waitFor(convergeBound, func() bool {
		if time.Since(last) > time.Second {
			last = time.Now()
			var counts []int
			for _, nd := range nodes {
				counts = append(counts, nd.Market().Len(time.Now()))
			}
			t.Logf("%s: records per host %v", time.Since(start).Round(time.Second), counts)
		}
		for _, nd := range nodes {
			if nd.Market().Len(time.Now()) != n {
				return false
			}
		}
		return true
	})
	if !ok {
		for i, nd := range nodes {
			t.Logf("node %d: %d records, %d peers", i, nd.Market().Len(time.Now()), len(nd.Host().Network().Peers()))
		}
		t.Fatalf("not every host learned all %d records within %s", n, convergeBound)
	}
	t.Logf("%d hosts converged in %s", n, time.Since(start).Round(time.Millisecond))

	// A change is published on its own and reaches everyone.
	nodes[7].rig.setFree(3)
	ok = waitFor(convergeBound, func() bool {
		for _, nd := range nodes {
			e, found := nd.Market().Get(nodes[7].ID(), time.Now())
			if !found || e.Record.Capacity.FreeGPUs != 3 {
				return false
			}
		}
		return true
	})
	if !ok {
		for i, nd := range nodes {
			e, found := nd.Market().Get(nodes[7].ID(), time.Now())
			t.Logf("node %d: has node 7's record %v, seq %d, free %d", i, found, e.Record.Seq, e.Record.Capacity.FreeGPUs)
		}
		t.Fatalf("capacity change of node 7 did not reach every host within %s", convergeBound)
	}
	for i, nd := range nodes {
		if got := testutil.ToFloat64(nd.metrics.invalid.WithLabelValues("bad_signature")); got != 0 {
			t.Errorf("node %d counted %v bad signatures among honest hosts", i, got)
		}
	}
}

// TestSyncFlood: 10,000 validly signed records of fresh peer IDs arrive in market-sync
// answers; the market view keeps at most max_records of them and the node's memory
// stays bounded. Then an answer of forged records gets its peer graylisted.
func TestSyncFlood(t *testing.T) {
	const maxRecords, perAnswer, total = 1000, 1000, 10_000
	victim := startNode(t, 1, nil, func(c *Config, d *Deps) {
		c.MaxRecords, c.MaxSyncRecords = maxRecords, perAnswer
		c.RepublishInterval = configfile.Duration(time.Hour) // no anti-entropy pulls of its own
		c.RecordTTL = configfile.Duration(2 * time.Hour)
	})
	attacker := startNode(t, 2, nil)
	eth, err := ethcrypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	capa := padded()
	var next atomic.Int64
	var forge atomic.Bool
	attacker.Host().SetStreamHandler(SyncProtocol, func(s network.Stream) {
		defer s.Close()
		for i := 0; i < perAnswer; i++ {
			if forge.Load() {
				writeRaw(s, []byte(strings.Repeat("x", 100)))
				continue
			}
			key, _, _ := crypto.GenerateEd25519Key(nil)
			id, _ := peer.IDFromPrivateKey(key)
			addr, sig, _ := capacity.Bind(id, eth)
			rec := &capacity.Record{Version: capacity.Version, PeerID: id.String(), Seq: uint64(next.Add(1)),
				Timestamp: time.Now().Unix(), EthAddress: addr, EthSignature: sig, Capacity: capa}
			b, err := capacity.Seal(rec, key)
			if err != nil {
				t.Error(err)
				return
			}
			if err := writeRaw(s, b); err != nil {
				return
			}
		}
	})
	if err := victim.Host().Connect(t.Context(), peer.AddrInfo{ID: attacker.ID(), Addrs: attacker.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		var m goruntime.MemStats
		goruntime.GC()
		goruntime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	ctx := t.Context()
	// The victim may pull on its own too when the attacker joins the topic: pull until
	// 10,000 records went out.
	for pulls := 0; next.Load() < total; pulls++ {
		if pulls > 2*total/perAnswer {
			t.Fatalf("%d pulls and only %d records sent", pulls, next.Load())
		}
		if err := victim.pull(ctx, attacker.ID()); err != nil {
			t.Fatal(err)
		}
	}
	after := heap()
	if got := victim.market.Len(time.Now()); got != maxRecords-1 && got != maxRecords {
		t.Errorf("market view holds %d records, want max_records (%d, one of them possibly its own)", got, maxRecords)
	}
	dropped := testutil.ToFloat64(victim.metrics.dropped.WithLabelValues(droppedMarketFull))
	if dropped < total-maxRecords {
		t.Errorf("records dropped for a full market: %v, want at least %d", dropped, total-maxRecords)
	}
	// A kept record costs about 15 KiB (its envelope and its decoded strings): 10,000
	// would take about 150 MiB, the 1,000 kept take 15 MiB, and the test's own attacker
	// shares the process.
	const bound = 64 << 20
	if after > before && after-before > bound {
		t.Errorf("heap grew by %d MiB while 10,000 records arrived, bound %d MiB", (after-before)>>20, bound>>20)
	}
	t.Logf("heap %d MiB -> %d MiB, %d records kept", before>>20, after>>20, victim.market.Len(time.Now()))

	// Forged records: the answer is cut off and the peer graylisted.
	forge.Store(true)
	if err := victim.pull(ctx, attacker.ID()); err == nil || !strings.Contains(err.Error(), "invalid records") {
		t.Errorf("pull of forged records: %v", err)
	}
	if !victim.guard.graylisted(attacker.ID()) {
		t.Error("peer answering forged records not graylisted")
	}
	if !waitFor(10*time.Second, func() bool { return !victim.Connected(attacker.ID()) }) {
		t.Error("graylisted peer still connected")
	}
}
