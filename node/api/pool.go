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
	// Datasets are the tags of the datasets the member's policy shares.
	Datasets []string `json:"datasets,omitempty"`
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

// PoolAssignment is one rank of a pool job given to a member.
type PoolAssignment struct {
	Rank   int    `json:"rank"`
	Member string `json:"member"`
	// Account is the member's payout address, Score the score it is paid by.
	Account      string    `json:"account"`
	Score        float64   `json:"score"`
	DispatchedAt time.Time `json:"dispatched_at"`
	// Status is the member's result: done, failed, declined; "" while it runs.
	Status      string     `json:"status,omitempty"`
	CID         string     `json:"cid,omitempty"`
	WallSeconds float64    `json:"wall_seconds,omitempty"`
	ResultAt    *time.Time `json:"result_at,omitempty"`
	// Reason is the member's reason for a failed or declined result, or why the job
	// was taken from it.
	Reason string `json:"reason,omitempty"`
}

// PoolJob is a job the pool took or declined, as its coordinator tracks it.
type PoolJob struct {
	ID string `json:"id"`
	// State is evaluating, accepting, dispatching, running, verifying, submitting,
	// submitted, paid, or declined, failed, rejected, expired, lost.
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	RewardWei string    `json:"reward_wei"`
	// Nodes is how many member rigs it runs on.
	Nodes  int    `json:"nodes,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Members are the members running it now, by rank; Past those it was taken from.
	Members       []PoolAssignment `json:"members"`
	Past          []PoolAssignment `json:"past,omitempty"`
	Reassignments int              `json:"reassignments,omitempty"`
	OutputCID     string           `json:"output_cid,omitempty"`
	AcceptTx      string           `json:"accept_tx,omitempty"`
	SubmitTx      string           `json:"submit_tx,omitempty"`
	Refund        string           `json:"refund,omitempty"`
	// Booked says the pay split was booked for the members.
	Booked bool `json:"booked,omitempty"`
}

// PoolJobs is the answer of GET /v1/pool/jobs, on a pool coordinator: newest first.
type PoolJobs struct {
	Jobs []PoolJob `json:"jobs"`
}

// PoolJobs fetches GET /v1/pool/jobs.
func (c *Client) PoolJobs(ctx context.Context) (PoolJobs, error) {
	var out PoolJobs
	err := c.Get(ctx, "/v1/pool/jobs", &out)
	return out, err
}
