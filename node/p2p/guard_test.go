package p2p

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/gpunode/gpunode/internal/configfile"
)

func testPeer(t testing.TB) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestGuard plays the guard's rules on a fake clock: each peer's bucket, the node's
// bucket shared by all, strikes that graylist, and the graylist's expiry.
func TestGuard(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := Default()
	cfg.OfferRate, cfg.OfferBurst, cfg.OfferRateTotal, cfg.OfferBurstTotal = 1, 2, 2, 3
	cfg.GraylistStrikes, cfg.GraylistFor = 3, configfile.Duration(time.Hour)
	g := newGuard(cfg, func() time.Time { return now })
	var grayed []peer.ID
	g.onGraylist = func(id peer.ID, _ string) { grayed = append(grayed, id) }
	a, b, c := testPeer(t), testPeer(t), testPeer(t)

	steps := []struct {
		id   peer.ID
		want string
	}{
		{a, ""}, {a, ""}, {a, refusedRateLimited}, // a's burst of 2
		{b, ""},                 // the node's burst of 3 is now spent
		{b, refusedBusy},        // b has tokens, the node has none: no strike
		{a, refusedRateLimited}, // a's second strike
	}
	for i, s := range steps {
		if got := g.allowOffer(s.id); got != s.want {
			t.Fatalf("step %d: %q, want %q", i, got, s.want)
		}
	}
	if len(grayed) != 0 {
		t.Fatalf("graylisted %v after two strikes", grayed)
	}
	if got := g.allowOffer(a); got != refusedRateLimited || len(grayed) != 1 || grayed[0] != a || !g.graylisted(a) {
		t.Fatalf("third strike: %q, graylisted %v", got, grayed)
	}
	if g.InterceptSecured(0, a, nil) || g.InterceptPeerDial(a) || !g.InterceptSecured(0, c, nil) {
		t.Error("the gater does not refuse exactly the graylisted peer")
	}
	// Time refills the buckets; strikes older than a minute are forgotten.
	now = now.Add(2 * time.Second)
	if got := g.allowOffer(b); got != "" {
		t.Errorf("b after 2s: %q", got)
	}
	if g.strike(b, refusedInvalid) || g.strike(b, refusedInvalid) {
		t.Fatal("graylisted after two strikes")
	}
	now = now.Add(strikeWindow + time.Second)
	if g.strike(b, refusedInvalid) {
		t.Error("strikes older than the window still counted")
	}
	// The graylist expires.
	now = now.Add(time.Hour)
	if g.graylisted(a) || g.count() != 0 {
		t.Error("graylist entry outlived graylist_for")
	}
}

// TestGuardTableFull: past maxTrackedPeers active peers, new peers share one bucket, so
// a swarm of fresh identities gets no more than a single peer would.
func TestGuardTableFull(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := Default()
	cfg.OfferRate, cfg.OfferBurst, cfg.OfferRateTotal, cfg.OfferBurstTotal = 1, 1, 100000, 100000
	g := newGuard(cfg, func() time.Time { return now })
	for i := 0; i < maxTrackedPeers; i++ {
		g.peers[peer.ID(fmt.Sprint("p", i))] = &peerState{offers: rate.NewLimiter(1, 1), syncs: rate.NewLimiter(1, 1), seen: now}
	}
	allowed := 0
	for i := 0; i < 50; i++ {
		if g.allowOffer(testPeer(t)) == "" {
			allowed++
		}
	}
	if allowed != cfg.OfferBurst {
		t.Errorf("%d offers of 50 fresh peers allowed with a full table, want the shared burst of %d", allowed, cfg.OfferBurst)
	}
	// Once the tracked peers have been idle long enough, they are forgotten.
	now = now.Add(time.Hour)
	if got := g.allowOffer(testPeer(t)); got != "" || len(g.peers) != 1 {
		t.Errorf("after an idle hour: %q with %d peers tracked", got, len(g.peers))
	}
}
