package api

import (
	"context"
	"encoding/json"
	"time"
)

// P2PPeers is this node and its connected peers: the answer of GET /v1/p2p/peers.
type P2PPeers struct {
	ID    string   `json:"peer_id"`
	Addrs []string `json:"addrs"`
	// Reachability is AutoNAT's verdict on this node: "unknown" (not decided yet),
	// "public" (peers can dial it) or "private" (only through relays).
	Reachability string    `json:"reachability,omitempty"`
	Peers        []P2PPeer `json:"peers"`
	// Graylisted are the peers whose connections are refused, and until when.
	Graylisted []P2PGraylisted `json:"graylisted,omitempty"`
}

// P2PGraylisted is one graylisted peer.
type P2PGraylisted struct {
	ID    string    `json:"peer_id"`
	Until time.Time `json:"until"`
}

// P2PPeer is one connected peer.
type P2PPeer struct {
	ID        string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	Score     float64  `json:"score"`
	LatencyMS float64  `json:"latency_ms"`
	Agent     string   `json:"agent,omitempty"`
}

// P2PMarket is the node's view of the network's capacity records: the answer of
// GET /v1/p2p/market.
type P2PMarket struct {
	Records []P2PRecord `json:"records"`
}

// P2PRecord is one capacity record.
type P2PRecord struct {
	PeerID          string   `json:"peer_id"`
	Self            bool     `json:"self,omitempty"`
	EthAddress      string   `json:"eth_address"`
	GPUs            []P2PGPU `json:"gpus"`
	TotalGPUs       int      `json:"total_gpus"`
	FreeGPUs        int      `json:"free_gpus"`
	Score           float64  `json:"score"`
	ReportCID       string   `json:"report_cid,omitempty"`
	PricePerGPUHour string   `json:"price_per_gpu_hour"`
	JobKinds        []string `json:"job_kinds,omitempty"`
	DatasetTags     []string `json:"dataset_tags,omitempty"`
	SoftwareVersion string   `json:"software_version"`
	Seq             uint64   `json:"seq"`
	AgeSeconds      float64  `json:"age_s"`
	ExpiresIn       float64  `json:"expires_in_s"`
}

// P2PGPU is one GPU model of a record and how many of it the rig has.
type P2PGPU struct {
	Model     string `json:"model"`
	MemoryMiB int    `json:"memory_mib"`
	Count     int    `json:"count"`
}

// P2PPeers fetches GET /v1/p2p/peers.
func (c *Client) P2PPeers(ctx context.Context) (P2PPeers, error) {
	var out P2PPeers
	err := c.Get(ctx, "/v1/p2p/peers", &out)
	return out, err
}

// P2PMarket fetches GET /v1/p2p/market.
func (c *Client) P2PMarket(ctx context.Context) (P2PMarket, error) {
	var out P2PMarket
	err := c.Get(ctx, "/v1/p2p/market", &out)
	return out, err
}

// P2POffer sends an offer (the JSON of a p2p.Offer) to a peer through the daemon and
// returns the peer's decision (the JSON of a p2p.Decision).
func (c *Client) P2POffer(ctx context.Context, peerID string, offer json.RawMessage) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.Post(ctx, "/v1/p2p/offers", map[string]any{"peer_id": peerID, "offer": offer}, &out)
	return out, err
}
