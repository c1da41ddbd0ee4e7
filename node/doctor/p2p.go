package doctor

import (
	"context"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

// FixPrivate makes a rig behind NAT reachable directly.
const FixPrivate = "forward the TCP and UDP ports of p2p.listen_addrs on the router to this rig (or set p2p.nat_port_map = true where the router speaks UPnP/NAT-PMP); until then peers reach it only through relays (p2p.relay)"

// Reachability reports AutoNAT's verdict on the running daemon; peers is nil when no
// daemon answers.
func Reachability(enabled bool, peers *api.P2PPeers) Result {
	const name = "p2p-reachability"
	switch {
	case !enabled:
		return skip(name, "p2p.enabled is false: the node is not on the network")
	case peers == nil:
		return skip(name, "the daemon is not running: AutoNAT's verdict comes from the running node")
	}
	switch peers.Reachability {
	case "public":
		return ok(name, "AutoNAT: public, peers dial this rig directly (%d connected)", len(peers.Peers))
	case "private":
		return Result{Name: name, Status: Warn, Detail: "AutoNAT: private, peers cannot dial this rig directly", Fix: FixPrivate}
	}
	return skip(name, "AutoNAT has no verdict yet: it needs connected peers that serve AutoNAT")
}

// daemonPeers asks a running daemon for its network view; nil when it has none.
func daemonPeers(ctx context.Context, socket string) *api.P2PPeers {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	peers, err := api.NewClient(socket).P2PPeers(ctx)
	if err != nil {
		return nil
	}
	return &peers
}
