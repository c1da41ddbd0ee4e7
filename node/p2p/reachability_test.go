package p2p

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

// TestReachabilityFollowsAutoNAT: the node's peers answer carries AutoNAT's latest
// verdict, as the host's event bus announces it.
func TestReachabilityFollowsAutoNAT(t *testing.T) {
	n := startNode(t, 0, nil)
	if got := n.Peers().Reachability; got != "unknown" && got != "private" && got != "public" {
		t.Fatalf("reachability %q before any verdict", got)
	}
	em, err := n.host.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for _, r := range []network.Reachability{network.ReachabilityPrivate, network.ReachabilityPublic, network.ReachabilityUnknown} {
		if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: r}); err != nil {
			t.Fatal(err)
		}
		want := map[network.Reachability]string{network.ReachabilityPrivate: "private", network.ReachabilityPublic: "public", network.ReachabilityUnknown: "unknown"}[r]
		if !waitFor(10*time.Second, func() bool { return n.Peers().Reachability == want }) {
			t.Fatalf("reachability %q after AutoNAT said %s", n.Peers().Reachability, want)
		}
	}
}
