package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpunode/gpunode/internal/configfile"
	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// floodOffers sends n offers from one node to another, one after the other as fast as
// the answers come, and returns the decisions and the errors.
func floodOffers(t *testing.T, from, to *testNode, n int) ([]Decision, []error) {
	t.Helper()
	var ds []Decision
	var errs []error
	for i := 0; i < n; i++ {
		o := goodOffer()
		o.ID = fmt.Sprintf("flood-%d", i)
		o.GPUs = 0
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		d, err := from.SendOffer(ctx, to.ID(), o)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ds = append(ds, d)
	}
	return ds, errs
}

// TestOfferFlood: a peer sending 1,000 offers in a burst gets no more evaluated than its
// token bucket allows; every other offer is answered with the refusal and its reason,
// and counted by reason.
func TestOfferFlood(t *testing.T) {
	var evaluated atomic.Int64
	rig := startNode(t, 1, nil, func(c *Config, d *Deps) {
		c.OfferRate, c.OfferBurst = 2, 5
		c.GraylistStrikes = 100000 // this test is about the bucket alone
		d.Offers = func(context.Context, peer.ID, Offer) Decision {
			evaluated.Add(1)
			return Decision{Accepted: true, Reason: "ok"}
		}
	})
	attacker := startNode(t, 2, rig.Addrs())
	if !waitFor(10*time.Second, func() bool { return attacker.Connected(rig.ID()) }) {
		t.Fatal("attacker did not connect")
	}
	start := time.Now()
	ds, errs := floodOffers(t, attacker, rig, 1000)
	elapsed := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d offers failed, first: %v", len(errs), errs[0])
	}
	max := int64(5 + 2*elapsed.Seconds() + 1)
	got := evaluated.Load()
	if got < 5 || got > max {
		t.Errorf("%d offers evaluated in %s, want 5..%d", got, elapsed.Round(time.Millisecond), max)
	}
	accepted := 0
	for _, d := range ds {
		switch {
		case d.Accepted:
			accepted++
		case !strings.Contains(d.Reason, "rate limited") || !strings.Contains(d.Reason, "2 offers per second"):
			t.Fatalf("refusal without its reason: %+v", d)
		}
	}
	if int64(accepted) != got {
		t.Errorf("%d accepted answers, %d evaluations", accepted, got)
	}
	if refused := testutil.ToFloat64(rig.metrics.refused.WithLabelValues(refusedRateLimited)); refused != float64(1000-got) {
		t.Errorf("refused offers counted %v, want %d", refused, 1000-got)
	}
	// Another peer is not held back by the first one's bucket.
	honest := startNode(t, 3, rig.Addrs())
	if !waitFor(10*time.Second, func() bool { return honest.Connected(rig.ID()) }) {
		t.Fatal("honest peer did not connect")
	}
	if ds, errs := floodOffers(t, honest, rig, 1); len(errs) > 0 || !ds[0].Accepted {
		t.Errorf("honest peer's offer: %+v %v", ds, errs)
	}
}

// TestGraylist: a peer that keeps flooding past its bucket is disconnected and
// graylisted: its connections are refused, it can send nothing more, and others are
// served as before.
func TestGraylist(t *testing.T) {
	var evaluated atomic.Int64
	rig := startNode(t, 1, nil, func(c *Config, d *Deps) {
		c.OfferRate, c.OfferBurst, c.GraylistStrikes = 1, 3, 10
		c.GraylistFor = configfile.Duration(time.Hour)
		d.Offers = func(context.Context, peer.ID, Offer) Decision {
			evaluated.Add(1)
			return Decision{Accepted: true, Reason: "ok"}
		}
	})
	attacker := startNode(t, 2, rig.Addrs())
	if !waitFor(10*time.Second, func() bool { return attacker.Connected(rig.ID()) }) {
		t.Fatal("attacker did not connect")
	}
	ds, errs := floodOffers(t, attacker, rig, 100)
	if len(errs) < 80 {
		t.Errorf("%d of 100 offers failed, want the attacker cut off after about 13: %d answers", len(errs), len(ds))
	}
	if got := evaluated.Load(); got > 3+int64(time.Minute.Seconds()) {
		t.Errorf("%d offers evaluated", got)
	}
	if !waitFor(10*time.Second, func() bool { return !rig.Connected(attacker.ID()) && !attacker.Connected(rig.ID()) }) {
		t.Fatal("graylisted attacker still connected")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := attacker.Host().Connect(ctx, peer.AddrInfo{ID: rig.ID(), Addrs: rig.Host().Addrs()}); err == nil && rig.Connected(attacker.ID()) {
		t.Error("graylisted attacker reconnected")
	}
	if got := testutil.ToFloat64(rig.metrics.grayed.WithLabelValues(refusedRateLimited)); got != 1 {
		t.Errorf("graylistings counted %v, want 1", got)
	}
	if got := rig.Peers().Graylisted; len(got) != 1 || got[0].ID != attacker.ID().String() || time.Until(got[0].Until) < 50*time.Minute {
		t.Errorf("graylisted peers %+v, want the attacker for an hour", got)
	}
	honest := startNode(t, 3, rig.Addrs())
	if !waitFor(10*time.Second, func() bool { return honest.Connected(rig.ID()) }) {
		t.Fatal("honest peer did not connect")
	}
	if ds, errs := floodOffers(t, honest, rig, 1); len(errs) > 0 || !ds[0].Accepted {
		t.Errorf("honest peer's offer: %+v %v", ds, errs)
	}
}

// TestOfferStreamsPerPeer: the resource manager lets one peer hold only a few offer
// streams open; the rest are reset before any handler runs.
func TestOfferStreamsPerPeer(t *testing.T) {
	rig := startNode(t, 1, nil)
	attacker := startNode(t, 2, rig.Addrs())
	if !waitFor(10*time.Second, func() bool { return attacker.Connected(rig.ID()) }) {
		t.Fatal("attacker did not connect")
	}
	const n = 12
	var streams []network.Stream
	for i := 0; i < n; i++ {
		s, err := attacker.Host().NewStream(t.Context(), rig.ID(), OfferProtocol)
		if err != nil {
			continue // refused at negotiation: fine
		}
		s.Write(binary.AppendUvarint(nil, 100)) // an offer that never comes
		streams = append(streams, s)
	}
	reset := n - len(streams)
	for _, s := range streams {
		s.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := readFrame(s, MaxOfferSize)
		if errors.Is(err, network.ErrReset) {
			reset++
		}
		s.Reset()
	}
	if reset < n-4 {
		t.Errorf("%d of %d stalled offer streams from one peer reset, want at least %d", reset, n, n-4)
	}
}

// padded is a capacity snapshot near the record size limit.
func padded() capacity.Capacity {
	c := newRig(0).cap
	for i := 0; i < 24; i++ {
		c.JobKinds = append(c.JobKinds, fmt.Sprintf("%03d-%s", i, strings.Repeat("k", 120)))
		c.DatasetTags = append(c.DatasetTags, fmt.Sprintf("%03d-%s", i, strings.Repeat("d", 120)))
	}
	return c
}

// TestSyncRequestsLimited: a peer asking for the market over and over gets a few answers
// and then resets, counted, and is graylisted when it keeps on.
func TestSyncRequestsLimited(t *testing.T) {
	rig := startNode(t, 1, nil, func(c *Config, _ *Deps) { c.GraylistStrikes = 5 })
	attacker := startNode(t, 2, rig.Addrs())
	if !waitFor(10*time.Second, func() bool { return attacker.Connected(rig.ID()) }) {
		t.Fatal("attacker did not connect")
	}
	answered, refused := 0, 0
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		s, err := attacker.Host().NewStream(ctx, rig.ID(), SyncProtocol)
		cancel()
		if err != nil {
			refused++
			continue
		}
		s.CloseWrite()
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(s)
		if err == nil {
			answered++
		} else {
			refused++
		}
		s.Close()
	}
	// The attacker's own pulls (on joining, anti-entropy) may have used some already.
	if answered > syncBurst || answered < 1 {
		t.Errorf("%d sync answers to one peer in a row, want 1..%d", answered, syncBurst)
	}
	if got := testutil.ToFloat64(rig.metrics.syncs); got < float64(rig.cfg.GraylistStrikes) {
		t.Errorf("refused sync requests counted %v, want at least %d", got, rig.cfg.GraylistStrikes)
	}
	if !rig.guard.graylisted(attacker.ID()) {
		t.Error("a peer asking for the market 20 times in a row is not graylisted")
	}
}

// TestSyncOldRecordsNotAbuse: records that expired on their way, or stamped by a clock
// ahead of this one, are dropped without holding it against the peer that sent them.
func TestSyncOldRecordsNotAbuse(t *testing.T) {
	victim := startNode(t, 1, nil)
	peerNode := startNode(t, 2, nil)
	eth, err := ethcrypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	peerNode.Host().SetStreamHandler(SyncProtocol, func(s network.Stream) {
		defer s.Close()
		for i := 0; i < 3*maxInvalidSync; i++ {
			key, _, _ := crypto.GenerateEd25519Key(nil)
			id, _ := peer.IDFromPrivateKey(key)
			addr, sig, _ := capacity.Bind(id, eth)
			ts := time.Now().Add(-2 * time.Duration(loopbackConfig().RecordTTL)) // expired
			if i%2 == 1 {
				ts = time.Now().Add(time.Hour) // a clock far ahead
			}
			b, err := capacity.Seal(&capacity.Record{Version: capacity.Version, PeerID: id.String(), Seq: 1,
				Timestamp: ts.Unix(), EthAddress: addr, EthSignature: sig, Capacity: newRig(0).cap}, key)
			if err != nil {
				t.Error(err)
				return
			}
			writeRaw(s, b)
		}
	})
	if err := victim.Host().Connect(t.Context(), peer.AddrInfo{ID: peerNode.ID(), Addrs: peerNode.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := victim.pull(t.Context(), peerNode.ID()); err != nil {
		t.Fatal(err)
	}
	if victim.guard.graylisted(peerNode.ID()) {
		t.Error("a peer passing on expired records was graylisted")
	}
	if got := testutil.ToFloat64(victim.metrics.invalid.WithLabelValues(string(capacity.ReasonTooOld))); got < maxInvalidSync {
		t.Errorf("expired records counted %v", got)
	}
}

// TestGossipFloodGraylisted: a peer that floods a node with a thousand invalid records
// as fast as its gossipsub sends them (its outbound queue made large enough to hold
// them all) gets no more than a validation queue's worth checked: it is graylisted
// after the first two, what it sends after that is dropped unchecked, and honest
// records still arrive.
func TestGossipFloodGraylisted(t *testing.T) {
	nodes := startCluster(t, 2)
	victim := nodes[1]
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const flood = 1000
	bad := newBadPeer(t, ctx, pubsub.WithPeerOutboundQueueSize(2*flood))
	if err := connect(ctx, victim, bad); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool {
		return slices.Contains(bad.topic.ListPeers(), victim.ID()) && slices.Contains(victim.topic.ListPeers(), bad.id)
	}) {
		t.Fatal("the flooding peer and its victim did not see each other on the topic")
	}
	checked := func() float64 {
		return testutil.ToFloat64(victim.metrics.invalid.WithLabelValues(string(capacity.ReasonMalformed)))
	}
	for i := 0; i < flood; i++ {
		if err := bad.topic.Publish(ctx, []byte(fmt.Sprintf("garbage %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if !waitFor(10*time.Second, func() bool { return victim.Scores()[bad.id] < graylistThreshold }) {
		t.Fatalf("flooding peer scored %v, want below the graylist threshold %v", victim.Scores()[bad.id], float64(graylistThreshold))
	}
	// Let what was already queued drain: the count stops growing.
	last, since := checked(), time.Now()
	waitFor(10*time.Second, func() bool {
		if c := checked(); c != last {
			last, since = c, time.Now()
		}
		return time.Since(since) > time.Second
	})
	t.Logf("%v of %d invalid records checked", last, flood)
	if last < 2 || last > validateQueue {
		t.Errorf("%v of %d invalid records from one peer checked, want 2..%d (the validation queue)", last, flood, validateQueue)
	}
	// Honest records still arrive.
	nodes[0].rig.setFree(3)
	if !waitFor(10*time.Second, func() bool {
		e, ok := victim.Market().Get(nodes[0].ID(), time.Now())
		return ok && e.Record.Capacity.FreeGPUs == 3
	}) {
		t.Error("an honest record did not reach the flooded node within 10s")
	}
}
