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
	PeerID     string   `json:"peer_id"`
	Self       bool     `json:"self,omitempty"`
	EthAddress string   `json:"eth_address"`
	GPUs       []P2PGPU `json:"gpus"`
	TotalGPUs  int      `json:"total_gpus"`
	FreeGPUs   int      `json:"free_gpus"`
	Score      float64  `json:"score"`
	// Verified is the capacity challenges verified (nil: never challenged): this node's
	// own verdict, else the best attestation the record carries.
	Verified *P2PVerified `json:"verified,omitempty"`
	// Attestations are the signed capacity attestations the record carries, verified.
	Attestations    []json.RawMessage `json:"attestations,omitempty"`
	ReportCID       string            `json:"report_cid,omitempty"`
	PricePerGPUHour string            `json:"price_per_gpu_hour"`
	JobKinds        []string          `json:"job_kinds,omitempty"`
	DatasetTags     []string          `json:"dataset_tags,omitempty"`
	SoftwareVersion string            `json:"software_version"`
	Seq             uint64            `json:"seq"`
	AgeSeconds      float64           `json:"age_s"`
	ExpiresIn       float64           `json:"expires_in_s"`
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

// Offer is a job offered to a provider over libp2p, as the offer protocol carries it.
type Offer struct {
	Version int `json:"v"`
	// ID is chosen by the sender to match the answer to its request.
	ID string `json:"id"`
	// ManifestCID is the job manifest on IPFS.
	ManifestCID string `json:"manifest_cid"`
	// GPUs is how many GPUs the job needs (0: a CPU job).
	GPUs int `json:"gpus"`
	// PricePerGPUHour is the offered price in wei per GPU-hour, a decimal integer.
	PricePerGPUHour string `json:"price_per_gpu_hour"`
	// MaxDurationSeconds bounds the job's run time.
	MaxDurationSeconds int64 `json:"max_duration_s"`
	// JobID is the job's on-chain id, if it is already posted (0x-hex or decimal).
	JobID string `json:"job_id,omitempty"`
	// ExpiresAt (unix seconds) is when the offer lapses.
	ExpiresAt int64 `json:"expires_at"`
}

// OfferDecision is a provider's answer to an offer.
type OfferDecision struct {
	Version  int    `json:"v"`
	ID       string `json:"id"`
	Accepted bool   `json:"accepted"`
	// Reason says why, in words for the sender's log.
	Reason string `json:"reason"`
}

// OfferRequest is the body of POST /v1/p2p/offers: send Offer to PeerID.
type OfferRequest struct {
	PeerID string `json:"peer_id"`
	Offer  Offer  `json:"offer"`
}

// P2POffer sends an offer to a peer through the daemon and returns the peer's decision.
func (c *Client) P2POffer(ctx context.Context, peerID string, offer Offer) (OfferDecision, error) {
	var out OfferDecision
	err := c.Post(ctx, "/v1/p2p/offers", OfferRequest{PeerID: peerID, Offer: offer}, &out)
	return out, err
}
