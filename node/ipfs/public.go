package ipfs

import (
	"context"
	"fmt"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	routinghelpers "github.com/libp2p/go-libp2p-routing-helpers"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// Public DHT modes (Config.PublicDHT).
const (
	// PublicDHTAuto is on for a node that takes jobs on a real chain, off on a dev chain
	// (chain id 1337) or without one: a dev network's content means nothing to the
	// public IPFS network. The node resolves it before New; New treats it as off.
	PublicDHTAuto = "auto"
	// PublicDHTOn announces the node's content on the public IPFS DHT too.
	PublicDHTOn = "on"
	// PublicDHTOff keeps the node on gpunode's own DHT.
	PublicDHTOff = "off"
)

// DefaultPublicBootstrapPeers are libp2p's public bootstrap peers, as kubo uses them.
func DefaultPublicBootstrapPeers() []string {
	var out []string
	for _, a := range dht.DefaultBootstrapPeers {
		out = append(out, a.String())
	}
	return out
}

// ResolvePublicDHT turns "auto" into on or off: on for a node on a real chain (not the
// dev chain's id 1337), off otherwise.
func ResolvePublicDHT(mode string, chainID uint64, hasChain bool) string {
	if mode != PublicDHTAuto {
		return mode
	}
	if hasChain && chainID != 1337 {
		return PublicDHTOn
	}
	return PublicDHTOff
}

// openPublicDHT joins the public IPFS DHT on h, as kubo does: a dual DHT (the WAN one
// for public addresses, a LAN one for private networks) under the /ipfs protocols,
// seeded from bootstrap.
func openPublicDHT(h host.Host, bootstrap []string) (*dual.DHT, error) {
	var peers []peer.AddrInfo
	for _, s := range bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("public_bootstrap_peers: %q: %w", s, err)
		}
		peers = append(peers, *ai)
	}
	d, err := dual.New(h, dual.DHTOption(dht.BootstrapPeers(peers...)))
	if err != nil {
		return nil, fmt.Errorf("ipfs: public DHT: %w", err)
	}
	return d, nil
}

// withPublic routes content through gpunode's own router (if any) and the public DHT at
// once: a provide announces on both; a find asks both.
func withPublic(own routing.ContentRouting, public *dual.DHT) routing.ContentRouting {
	if own == nil {
		return public
	}
	return routinghelpers.Parallel{Routers: []routing.Routing{
		&routinghelpers.Compose{ContentRouting: own},
		public,
	}}
}

// waitPublicPeers waits, at most limit, until the public DHT knows a peer (on the WAN or
// a LAN); at once when the public DHT is off.
func (n *Node) waitPublicPeers(ctx context.Context, limit time.Duration) {
	if n.public == nil {
		return
	}
	deadline := time.Now().Add(limit)
	for n.PublicPeers() == 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// PublicPeers is the size of the public DHT's routing tables (WAN and LAN); 0 when off.
func (n *Node) PublicPeers() int {
	if n.public == nil {
		return 0
	}
	return n.public.WAN.RoutingTable().Size() + n.public.LAN.RoutingTable().Size()
}
