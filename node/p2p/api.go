package p2p

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/api"
)

// Offer sends req's offer to its peer and returns the peer's decision: what
// POST /v1/p2p/offers does. A malformed peer id is api.ErrInvalidArgument, a peer that
// cannot be reached or answers badly api.ErrUnavailable.
func (n *Network) Offer(ctx context.Context, req api.OfferRequest) (api.OfferDecision, error) {
	id, err := peer.Decode(req.PeerID)
	if err != nil {
		return api.OfferDecision{}, api.WithClass(api.ErrInvalidArgument, fmt.Errorf("peer_id: %w", err))
	}
	d, err := n.SendOffer(ctx, id, Offer(req.Offer))
	if err != nil {
		return api.OfferDecision{}, api.WithClass(api.ErrUnavailable, err)
	}
	return api.OfferDecision(d), nil
}

// Peers describes this node and its connected peers.
func (n *Network) Peers() api.P2PPeers {
	scores := n.Scores()
	resp := api.P2PPeers{ID: n.host.ID().String(), Addrs: n.Addrs(), Reachability: n.Reachability(), Peers: []api.P2PPeer{}, Graylisted: n.guard.list()}
	ps := n.host.Peerstore()
	for _, id := range n.host.Network().Peers() {
		pi := api.P2PPeer{ID: id.String(), Score: scores[id],
			LatencyMS: float64(ps.LatencyEWMA(id)) / float64(time.Millisecond)}
		for _, c := range n.host.Network().ConnsToPeer(id) {
			pi.Addrs = append(pi.Addrs, c.RemoteMultiaddr().String())
		}
		if v, err := ps.Get(id, "AgentVersion"); err == nil {
			pi.Agent, _ = v.(string)
		}
		resp.Peers = append(resp.Peers, pi)
	}
	sort.Slice(resp.Peers, func(i, j int) bool { return resp.Peers[i].ID < resp.Peers[j].ID })
	return resp
}

// MarketView lists the live capacity records.
func (n *Network) MarketView() api.P2PMarket {
	now := n.now()
	self := n.host.ID().String()
	resp := api.P2PMarket{Records: []api.P2PRecord{}}
	for _, e := range n.market.List(now) {
		r := e.Record
		gpus := make([]api.P2PGPU, 0, len(r.Capacity.GPUs))
		for _, g := range r.Capacity.GPUs {
			gpus = append(gpus, api.P2PGPU(g))
		}
		resp.Records = append(resp.Records, api.P2PRecord{
			PeerID: r.PeerID, Self: r.PeerID == self, EthAddress: r.EthAddress,
			GPUs: gpus, TotalGPUs: r.TotalGPUs(), FreeGPUs: r.Capacity.FreeGPUs,
			Score: r.Capacity.Score.Overall, ReportCID: r.Capacity.Score.ReportCID,
			PricePerGPUHour: r.Capacity.PricePerGPUHour, JobKinds: r.Capacity.JobKinds,
			DatasetTags: r.Capacity.DatasetTags, SoftwareVersion: r.Capacity.SoftwareVersion,
			Seq: r.Seq, AgeSeconds: now.Sub(r.Time()).Seconds(), ExpiresIn: e.Expires.Sub(now).Seconds(),
			Attestations: r.Capacity.Attestations,
		})
	}
	return resp
}
