package p2p

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/p2p/capacity"
)

// PeersResponse is the answer of GET /v1/p2p/peers.
type PeersResponse struct {
	ID    string     `json:"peer_id"`
	Addrs []string   `json:"addrs"`
	Peers []PeerInfo `json:"peers"`
}

// PeerInfo is one connected peer.
type PeerInfo struct {
	ID        string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	Score     float64  `json:"score"`
	LatencyMS float64  `json:"latency_ms"`
	Agent     string   `json:"agent,omitempty"`
}

// MarketResponse is the answer of GET /v1/p2p/market.
type MarketResponse struct {
	Records []MarketRecord `json:"records"`
}

// MarketRecord is one live capacity record as the CLI shows it.
type MarketRecord struct {
	PeerID          string         `json:"peer_id"`
	Self            bool           `json:"self,omitempty"`
	EthAddress      string         `json:"eth_address"`
	GPUs            []capacity.GPU `json:"gpus"`
	TotalGPUs       int            `json:"total_gpus"`
	FreeGPUs        int            `json:"free_gpus"`
	Score           float64        `json:"score"`
	ReportCID       string         `json:"report_cid,omitempty"`
	PricePerGPUHour string         `json:"price_per_gpu_hour"`
	JobKinds        []string       `json:"job_kinds,omitempty"`
	DatasetTags     []string       `json:"dataset_tags,omitempty"`
	SoftwareVersion string         `json:"software_version"`
	Seq             uint64         `json:"seq"`
	AgeSeconds      float64        `json:"age_s"`
	ExpiresIn       float64        `json:"expires_in_s"`
}

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
func (n *Network) Peers() PeersResponse {
	scores := n.Scores()
	resp := PeersResponse{ID: n.host.ID().String(), Addrs: n.Addrs(), Peers: []PeerInfo{}}
	ps := n.host.Peerstore()
	for _, id := range n.host.Network().Peers() {
		pi := PeerInfo{ID: id.String(), Score: scores[id],
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
func (n *Network) MarketView() MarketResponse {
	now := n.now()
	self := n.host.ID().String()
	resp := MarketResponse{Records: []MarketRecord{}}
	for _, e := range n.market.List(now) {
		r := e.Record
		resp.Records = append(resp.Records, MarketRecord{
			PeerID: r.PeerID, Self: r.PeerID == self, EthAddress: r.EthAddress,
			GPUs: r.Capacity.GPUs, TotalGPUs: r.TotalGPUs(), FreeGPUs: r.Capacity.FreeGPUs,
			Score: r.Capacity.Score.Overall, ReportCID: r.Capacity.Score.ReportCID,
			PricePerGPUHour: r.Capacity.PricePerGPUHour, JobKinds: r.Capacity.JobKinds,
			DatasetTags: r.Capacity.DatasetTags, SoftwareVersion: r.Capacity.SoftwareVersion,
			Seq: r.Seq, AgeSeconds: now.Sub(r.Time()).Seconds(), ExpiresIn: e.Expires.Sub(now).Seconds(),
		})
	}
	return resp
}
