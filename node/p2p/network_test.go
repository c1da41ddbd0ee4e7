package p2p

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// convergeBound is the stated bound for acceptance 1: every one of 20 hosts on loopback
// holds every host's record within this time of the last host starting.
const convergeBound = 30 * time.Second

func TestLoneNodeListsItself(t *testing.T) {
	nd := startNode(t, 0, nil)
	if !waitFor(5*time.Second, func() bool { _, ok := nd.Market().Get(nd.ID(), time.Now()); return ok }) {
		t.Fatal("a node without peers does not list its own record")
	}
}

// badPeer is a host that speaks gossipsub on the capacity topic without the validator,
// so it can publish what an honest node never would.
type badPeer struct {
	key   lcrypto.PrivKey
	id    peer.ID
	host  host.Host
	topic *pubsub.Topic
}

func newBadPeer(t *testing.T, ctx context.Context, extra ...pubsub.Option) *badPeer {
	t.Helper()
	key, _, _ := lcrypto.GenerateEd25519Key(nil)
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	opts := extra
	if os.Getenv("GPUNODE_P2P_TRACE") != "" {
		opts = append(opts, pubsub.WithRawTracer(tracer{bad: true}))
	}
	ps, err := pubsub.NewGossipSub(ctx, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(Topic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { // drain: a full subscription would only log
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	}()
	return &badPeer{key: key, id: h.ID(), host: h, topic: topic}
}

func (b *badPeer) record(t *testing.T, seq uint64, ts time.Time) *capacity.Record {
	eth, _ := crypto.GenerateKey()
	addr, sig, err := capacity.Bind(b.id, eth)
	if err != nil {
		t.Fatal(err)
	}
	return &capacity.Record{Version: capacity.Version, PeerID: b.id.String(), Seq: seq, Timestamp: ts.Unix(),
		EthAddress: addr, EthSignature: sig, Capacity: newRig(99).cap}
}

type domainRecord struct {
	*capacity.Record
	domain string
}

func (d domainRecord) Domain() string { return d.domain }

func TestInvalidRecordsRejectedAndScored(t *testing.T) {
	nodes := startCluster(t, 5)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	direct := nodes[1:4] // every bad peer connects to these three only
	join := func() *badPeer {
		bad := newBadPeer(t, ctx)
		for _, nd := range direct {
			if err := connect(ctx, nd, bad); err != nil {
				t.Fatal(err)
			}
		}
		// Gossipsub loses the first message on a fresh connection now and then, so
		// the bad peer first gets one valid record through to every direct node,
		// republishing it until it arrives.
		for seq := uint64(1); ; seq++ {
			if seq > 40 {
				t.Fatal("bad peer's valid record did not reach its direct neighbours in 20s")
			}
			if err := bad.topic.Publish(ctx, bad.seal(t, bad.record(t, seq, time.Now()))); err != nil {
				t.Fatal(err)
			}
			if waitFor(500*time.Millisecond, func() bool {
				for _, nd := range direct {
					if _, ok := nd.Market().Get(bad.id, time.Now()); !ok {
						return false
					}
				}
				return true
			}) {
				break
			}
		}
		return bad
	}
	now := time.Now()

	// One peer per kind of invalid record: a peer is graylisted after three, so one
	// peer could not show all of them.
	makers := map[capacity.Reason]func(b *badPeer) []byte{
		capacity.ReasonMalformed: func(*badPeer) []byte { return []byte("{not a record") },
		capacity.ReasonBadSignature: func(b *badPeer) []byte {
			env := b.seal(t, b.record(t, 2, now))
			env[len(env)-1] ^= 0x55
			return env
		},
		capacity.ReasonWrongDomain: func(b *badPeer) []byte {
			env, err := record.Seal(domainRecord{b.record(t, 3, now), "libp2p-routing-state"}, b.key)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := env.Marshal()
			return out
		},
		capacity.ReasonBadBinding: func(b *badPeer) []byte {
			r := b.record(t, 4, now)
			r.EthAddress = nodes[0].ethAddr // claims an honest node's address
			return b.seal(t, r)
		},
		capacity.ReasonTooOld: func(b *badPeer) []byte { return b.seal(t, b.record(t, 5, now.Add(-time.Hour))) },
		capacity.ReasonTooLarge: func(b *badPeer) []byte {
			r := b.record(t, 6, now)
			r.Capacity.SoftwareVersion = strings.Repeat("x", capacity.MaxSize)
			env, _ := record.Seal(r, b.key)
			out, _ := env.Marshal()
			return out
		},
		capacity.ReasonPeerMismatch: func(b *badPeer) []byte {
			// A valid record of another peer, republished under the bad peer's name.
			e, _ := nodes[0].Market().Get(nodes[0].ID(), time.Now())
			return e.Envelope
		},
	}
	if !waitFor(convergeBound, func() bool { _, ok := nodes[0].Market().Get(nodes[0].ID(), time.Now()); return ok }) {
		t.Fatal("node 0 has no record of its own")
	}
	counted := func(nd *testNode, r capacity.Reason) float64 {
		return testutil.ToFloat64(nd.metrics.invalid.WithLabelValues(string(r)))
	}
	var once []*badPeer
	for reason, mk := range makers {
		b := join()
		once = append(once, b)
		data := mk(b)
		// Resent once if gossip lost it.
		for try := 0; try < 2; try++ {
			if err := b.topic.Publish(ctx, data); err != nil {
				t.Fatalf("publish %s: %v", reason, err)
			}
			if waitFor(2*time.Second, func() bool {
				for _, nd := range direct {
					if counted(nd, reason) < 1 {
						return false
					}
				}
				return true
			}) {
				break
			}
		}
	}
	if !waitFor(10*time.Second, func() bool {
		for _, nd := range direct {
			for r := range makers {
				if counted(nd, r) < 1 {
					return false
				}
			}
		}
		return true
	}) {
		for i, nd := range direct {
			for r := range makers {
				t.Logf("node %d %s: %v", i+1, r, counted(nd, r))
			}
		}
		t.Fatal("not every kind of invalid record was counted by reason on every directly connected node")
	}
	// Rejected records are not forwarded: node 4 is connected to honest nodes only.
	for r := range makers {
		if c := counted(nodes[4], r); c != 0 {
			t.Errorf("node 4 counted %v %s records: rejected records were forwarded", c, r)
		}
	}
	// One invalid record costs score.
	if !waitFor(5*time.Second, func() bool {
		for _, nd := range direct {
			for _, b := range once {
				if nd.Scores()[b.id] >= 0 {
					return false
				}
			}
		}
		return true
	}) {
		t.Error("a peer that sent one invalid record does not have a negative score everywhere")
	}

	// A persistent offender: a valid record, a stale one (ignored and counted, no score
	// cost since honest relays can deliver out of order), then a stream of malformed
	// ones that gets it graylisted, after which even its valid records are dropped.
	bad := join()
	staleBefore := counted(nodes[1], capacity.ReasonStaleSeq)
	for _, seq := range []uint64{100, 50} {
		if err := bad.topic.Publish(ctx, bad.seal(t, bad.record(t, seq, now))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !waitFor(10*time.Second, func() bool {
		for _, nd := range nodes {
			if e, ok := nd.Market().Get(bad.id, time.Now()); !ok || e.Record.Seq != 100 {
				return false
			}
		}
		return counted(nodes[1], capacity.ReasonStaleSeq) > staleBefore
	}) {
		t.Fatal("valid record seq 100 did not reach every node, or stale seq 50 was not counted on node 1")
	}
	// It keeps sending garbage, a few records a second for up to 10s: every direct
	// neighbour stops gossiping to it, and at least one graylists it (drops all it
	// sends and prunes it from the mesh). The offender's own gossipsub stalls after a
	// few rejections, so not every neighbour always sees enough to graylist it.
	penalized := func() (all bool, gray int) {
		all = true
		for _, nd := range direct {
			s := nd.Scores()[bad.id]
			all = all && s < gossipThreshold
			if s < graylistThreshold {
				gray++
			}
		}
		return all, gray
	}
	ok := false
	for i := 0; i < 20 && !ok; i++ {
		// Bursts: the offender's own gossipsub may stop sending once its neighbours
		// prune it, so each burst has to land before their reaction does.
		for j := 0; j < 4; j++ {
			if err := bad.topic.Publish(ctx, []byte(fmt.Sprintf("garbage %d.%d", i, j))); err != nil {
				t.Fatal(err)
			}
		}
		ok = waitFor(500*time.Millisecond, func() bool { all, gray := penalized(); return all && gray > 0 })
	}
	if !ok {
		for i, nd := range direct {
			t.Logf("node %d scores the offender %v", i+1, nd.Scores()[bad.id])
		}
		t.Fatalf("offender's score is not below the gossip threshold %v everywhere and below the graylist threshold %v somewhere",
			float64(gossipThreshold), float64(graylistThreshold))
	}
	for i, nd := range direct {
		for id, s := range nd.Scores() {
			if id == bad.id || s >= 0 || slices.ContainsFunc(once, func(b *badPeer) bool { return b.id == id }) {
				continue
			}
			t.Errorf("node %d scores honest peer %s at %v", i+1, id, s)
		}
	}
}

func (b *badPeer) seal(t *testing.T, r *capacity.Record) []byte {
	t.Helper()
	out, err := capacity.Seal(r, b.key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func connect(ctx context.Context, nd *testNode, b *badPeer) error {
	return nd.Host().Connect(ctx, peer.AddrInfo{ID: b.id, Addrs: b.host.Addrs()})
}

// TestNewcomerDoesNotMakeOthersRepublish: a node joining a settled network learns every
// record by pulling the market from its first neighbours and gets its own record out
// by gossip, while the nodes already there publish nothing new. (Each join used to
// make every node republish, so that n nodes starting up carried n² publications.)
func TestNewcomerDoesNotMakeOthersRepublish(t *testing.T) {
	const n = 8
	quiet := func(c *Config, _ *Deps) {
		c.RepublishInterval = configfile.Duration(time.Hour)
		c.RecordTTL = configfile.Duration(2 * time.Hour)
	}
	nodes := startCluster(t, n, quiet)
	settled := func(nd *testNode) bool {
		nd.mu.Lock()
		defer nd.mu.Unlock()
		return nd.reached >= announceReach
	}
	if !waitFor(convergeBound, func() bool {
		for _, nd := range nodes {
			if nd.Market().Len(time.Now()) != n || !settled(nd) {
				return false
			}
		}
		return true
	}) {
		for i, nd := range nodes {
			t.Logf("node %d: %d records, settled %v", i, nd.Market().Len(time.Now()), settled(nd))
		}
		t.Fatalf("%d nodes did not converge within %s", n, convergeBound)
	}
	// A publication prompted by the last joins may still be on its way.
	seqs := map[peer.ID]uint64{}
	stable := time.Now()
	if !waitFor(convergeBound, func() bool {
		changed := false
		for _, nd := range nodes {
			nd.mu.Lock()
			changed = changed || seqs[nd.ID()] != nd.seq
			seqs[nd.ID()] = nd.seq
			nd.mu.Unlock()
		}
		if changed {
			stable = time.Now()
		}
		return time.Since(stable) > 2*time.Second
	}) {
		t.Fatal("the nodes kept publishing")
	}
	newcomer := startNode(t, n, nodes[0].Addrs(), quiet)
	if !waitFor(convergeBound, func() bool {
		if newcomer.Market().Len(time.Now()) != n+1 {
			return false
		}
		for _, nd := range nodes {
			if _, ok := nd.Market().Get(newcomer.ID(), time.Now()); !ok {
				return false
			}
		}
		return true
	}) {
		t.Logf("newcomer holds %d records", newcomer.Market().Len(time.Now()))
		for i, nd := range nodes {
			_, ok := nd.Market().Get(newcomer.ID(), time.Now())
			t.Logf("node %d has the newcomer's record: %v", i, ok)
		}
		t.Fatalf("the newcomer and the network did not learn each other's records within %s", convergeBound)
	}
	for i, nd := range nodes {
		nd.mu.Lock()
		seq := nd.seq
		nd.mu.Unlock()
		if seq != seqs[nd.ID()] {
			t.Errorf("node %d republished when the newcomer joined", i)
		}
	}
}
