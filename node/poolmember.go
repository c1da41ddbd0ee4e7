package node

import (
	"context"
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/pool"
)

// A pool member (pool.coordinator_peer set) takes jobs only from its coordinator, which
// faces the market for the pool: it does not take chain postings or offers itself. A
// dispatch becomes a job of the member's own machine (poolmember.Accepter), whose chain
// adapter hands results back to the coordinator (poolmember.Chain).

// poolMemberDeps makes the job side a pool member's, on a member node.
func (n *Node) poolMemberDeps(d *workDeps) {
	if n.cfg.Pool.Coordinator || n.cfg.Pool.CoordinatorPeer == "" {
		return
	}
	co, err := peer.Decode(n.cfg.Pool.CoordinatorPeer)
	if err != nil {
		return // openPool refused the node's pool role already; Check catches it first
	}
	d.PoolCoordinator = co
	d.PoolResults = memberResults{n}
}

// memberResults sends results through the node's pool member, which the network opens.
type memberResults struct{ n *Node }

func (r memberResults) SendResult(ctx context.Context, res pool.Result) (pool.Ack, error) {
	if r.n.poolMember == nil {
		return pool.Ack{}, errNoPoolLink
	}
	return r.n.poolMember.SendResult(ctx, res)
}

var errNoPoolLink = errors.New("no link to the pool's coordinator: the p2p network is off or did not start ([p2p])")

// attachPoolMember makes the member's dispatch accepter run jobs on w's machine.
func (n *Node) attachPoolMember(w *work) {
	if w.pool != nil {
		n.poolAccepter.Store(w.pool)
	}
}

// acceptDispatch is the member's pool.Accepter: the machine's, once the job side exists.
func (n *Node) acceptDispatch(ctx context.Context, d pool.Dispatch) (bool, string) {
	a := n.poolAccepter.Load()
	if a == nil {
		return false, "this member takes no jobs: it needs a chain ([market]), a container runtime and IPFS on the p2p network"
	}
	return a.Accept(ctx, d)
}

// cancelDispatch is the member's pool.CancelHandler: the machine stops a job the
// coordinator took back.
func (n *Node) cancelDispatch(ctx context.Context, c pool.Cancel) (bool, string) {
	a := n.poolAccepter.Load()
	if a == nil {
		// Its job side is not up yet (or never will be): the coordinator tells it again
		// while its heartbeats list the job.
		return false, "this member's job side is not running: it cannot stop jobs yet"
	}
	return a.Cancel(ctx, c)
}

// poolRunning lists the pool's jobs the member holds, for its heartbeats.
func (n *Node) poolRunning() []string {
	if a := n.poolAccepter.Load(); a != nil {
		return a.Running()
	}
	return nil
}
