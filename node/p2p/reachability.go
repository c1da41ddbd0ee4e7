package p2p

import (
	"context"
	"strings"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

// watchReachability keeps the host's AutoNAT verdict for status and `gpunode doctor`
// until ctx ends: whether peers can dial this rig directly or only through relays.
func (n *Network) watchReachability(ctx context.Context) {
	sub, err := n.host.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged), eventbus.Name("gpunode reachability"))
	if err != nil {
		n.log.Warn("cannot follow AutoNAT's reachability verdict", "err", err)
		return
	}
	go func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				n.reach.Store(int32(e.(event.EvtLocalReachabilityChanged).Reachability))
			}
		}
	}()
}

// Reachability is AutoNAT's verdict on this host: "unknown" (not decided yet, it needs
// connected peers serving AutoNAT), "public" or "private" (behind NAT or a firewall).
func (n *Network) Reachability() string {
	return strings.ToLower(network.Reachability(n.reach.Load()).String())
}
