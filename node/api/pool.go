package api

import (
	"context"
	"time"
)

// PoolMember is one member of the pool as its coordinator knows it.
type PoolMember struct {
	PeerID  string `json:"peer_id"`
	Account string `json:"account"`
	// GPUs and FreeGPUs count the member's GPUs; Score is its benchmark's DL hashrate
	// (TFLOPS), Verified its challenge-verified one (0 = none).
	GPUs      int      `json:"gpus"`
	FreeGPUs  int      `json:"free_gpus"`
	GPUModel  string   `json:"gpu_model,omitempty"`
	Score     float64  `json:"score"`
	Verified  float64  `json:"verified,omitempty"`
	Admission string   `json:"admission"`
	Running   []string `json:"running,omitempty"`
	// LastSeen is when its last heartbeat arrived; Alive says whether that was within
	// the coordinator's heartbeat bound.
	LastSeen time.Time `json:"last_seen"`
	Alive    bool      `json:"alive"`
}

// PoolMembers is the answer of GET /v1/pool/members, on a pool coordinator.
type PoolMembers struct {
	// Coordinator is this node's peer ID, which members name as coordinator_peer.
	Coordinator        string       `json:"coordinator"`
	HeartbeatBoundSecs float64      `json:"heartbeat_bound_seconds"`
	Members            []PoolMember `json:"members"`
}

// PoolMembers fetches GET /v1/pool/members.
func (c *Client) PoolMembers(ctx context.Context) (PoolMembers, error) {
	var out PoolMembers
	err := c.Get(ctx, "/v1/pool/members", &out)
	return out, err
}
