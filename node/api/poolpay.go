package api

import (
	"context"
	"time"
)

// States of a member's share of a job.
const (
	ShareBooked    = "booked"    // in the coordinator's ledger, not yet published
	SharePublished = "published" // in a published epoch, not claimed
	ShareClaimed   = "claimed"   // paid out to the member
)

// PoolShare is one member's share of one job the pool was paid for.
type PoolShare struct {
	JobID  string `json:"job_id"`
	Member string `json:"member"`
	Wei    string `json:"wei"`
	// GPUSeconds and Score are the member's work on the job, which the share is
	// proportional to (GPU-seconds × score).
	GPUSeconds float64   `json:"gpu_seconds"`
	Score      float64   `json:"score"`
	BookedAt   time.Time `json:"booked_at"`
	// Epoch is the PoolPayouts epoch that pays it; nil while it is only booked.
	Epoch *uint64 `json:"epoch,omitempty"`
	// State is booked, published or claimed.
	State string `json:"state"`
}

// PoolPayout is a member's claim in one published epoch.
type PoolPayout struct {
	Epoch  uint64 `json:"epoch"`
	Member string `json:"member"`
	Wei    string `json:"wei"`
	// Proof is the Merkle proof the contract checks the claim with (a member's own view).
	Proof   []string `json:"proof,omitempty"`
	Claimed bool     `json:"claimed"`
}

// PoolOwed sums what the pool owes a member (or, on the coordinator, all members).
type PoolOwed struct {
	// BookedWei is booked but not yet published; PublishedWei is published and not
	// claimed (claimable); ClaimedWei was paid out.
	BookedWei    string `json:"booked_wei"`
	PublishedWei string `json:"published_wei"`
	ClaimedWei   string `json:"claimed_wei"`
	// Error says why the sums could not be brought up to date (they are then the last known).
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at,omitzero"`
}

// PoolPayouts is the answer of GET /v1/pool/payouts: on a coordinator every member's
// shares, on a member its own (asked of its coordinator).
type PoolPayouts struct {
	// Role is "coordinator" or "member".
	Role string `json:"role"`
	// Contract is the pool's PoolPayouts contract.
	Contract string `json:"contract"`
	// Coordinator is the coordinator's peer ID; Account, on a member, its payout address.
	Coordinator string `json:"coordinator"`
	Account     string `json:"account,omitempty"`
	// FeeBPS is the coordinator's fee; FeeWei what it kept of the jobs listed.
	FeeBPS uint32 `json:"fee_bps,omitempty"`
	FeeWei string `json:"fee_wei,omitempty"`
	// NextPublish is when the coordinator publishes the booked shares next.
	NextPublish time.Time    `json:"next_publish,omitzero"`
	Shares      []PoolShare  `json:"shares"`
	Payouts     []PoolPayout `json:"payouts"`
	Owed        PoolOwed     `json:"owed"`
}

// PoolPublishResult is a published epoch: POST /v1/pool/publish.
type PoolPublishResult struct {
	Contract string `json:"contract"`
	Epoch    uint64 `json:"epoch"`
	Root     string `json:"root"`
	TotalWei string `json:"total_wei"`
	Members  int    `json:"members"`
	Jobs     int    `json:"jobs"`
	TxHash   string `json:"tx,omitempty"`
	GasUsed  uint64 `json:"gas_used,omitempty"`
	// WithdrawnWei is the JobMarket credit the coordinator withdrew to fund the epoch.
	WithdrawnWei string `json:"withdrawn_wei,omitempty"`
}

// PoolClaim is one claimed payout.
type PoolClaim struct {
	Epoch   uint64 `json:"epoch"`
	Wei     string `json:"wei"`
	TxHash  string `json:"tx"`
	GasUsed uint64 `json:"gas_used"`
}

// PoolClaimResult is what POST /v1/pool/claim paid the member.
type PoolClaimResult struct {
	Account  string      `json:"account"`
	Contract string      `json:"contract"`
	Claims   []PoolClaim `json:"claims"`
	TotalWei string      `json:"total_wei"`
}

// PoolPayouts fetches GET /v1/pool/payouts.
func (c *Client) PoolPayouts(ctx context.Context) (PoolPayouts, error) {
	var out PoolPayouts
	err := c.Get(ctx, "/v1/pool/payouts", &out)
	return out, err
}

// PoolPublish asks the coordinator to publish the booked shares now (POST /v1/pool/publish).
func (c *Client) PoolPublish(ctx context.Context) (PoolPublishResult, error) {
	var out PoolPublishResult
	err := c.Post(ctx, "/v1/pool/publish", struct{}{}, &out)
	return out, err
}

// PoolClaim asks a member to claim every unclaimed published payout (POST /v1/pool/claim).
func (c *Client) PoolClaim(ctx context.Context) (PoolClaimResult, error) {
	var out PoolClaimResult
	err := c.Post(ctx, "/v1/pool/claim", struct{}{}, &out)
	return out, err
}
