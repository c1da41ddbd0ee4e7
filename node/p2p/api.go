package p2p

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/api"
)

// OfferRequest is the body of POST /v1/p2p/offers: send Offer to PeerID.
type OfferRequest struct {
	PeerID string `json:"peer_id"`
	Offer  Offer  `json:"offer"`
}

// Routes registers the network's control-API routes.
func (n *Network) Routes(s *api.Server) {
	s.HandleFunc("GET /v1/p2p/peers", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, n.Peers())
	})
	s.HandleFunc("GET /v1/p2p/market", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, n.MarketView())
	})
	s.HandleFunc("POST /v1/p2p/offers", func(w http.ResponseWriter, r *http.Request) {
		var req OfferRequest
		if err := api.DecodeJSON(r, MaxOfferSize*2, &req); err != nil {
			api.WriteError(w, http.StatusBadRequest, err)
			return
		}
		id, err := peer.Decode(req.PeerID)
		if err != nil {
			api.WriteError(w, http.StatusBadRequest, fmt.Errorf("peer_id: %w", err))
			return
		}
		d, err := n.SendOffer(r.Context(), id, req.Offer)
		if err != nil {
			api.WriteError(w, http.StatusBadGateway, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, d)
	})
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
		})
	}
	return resp
}
