package api

import (
	"context"
	"net/url"
	"time"
)

// MarketStatus is the chain side's state, as GET /v1/market/status answers it.
type MarketStatus struct {
	ChainID   uint64 `json:"chain_id"`
	RPCURL    string `json:"rpc_url"`
	JobMarket string `json:"job_market"`
	// Account is the node's address; empty when no key is unlocked (watch-only).
	Account string `json:"account,omitempty"`
	// Connected is false while the RPC endpoint fails.
	Connected     bool      `json:"connected"`
	Head          uint64    `json:"head"`
	HandledBlock  uint64    `json:"handled_through_block"`
	Confirmations uint64    `json:"confirmations"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
}

// WithdrawRequest asks the node to withdraw its JobMarket credit in a token.
type WithdrawRequest struct {
	// Token is the ERC-20 address; empty or the zero address for ETH.
	Token string `json:"token"`
}

// WithdrawResult is the confirmed withdrawal.
type WithdrawResult struct {
	TxHash string `json:"tx_hash"`
	Amount string `json:"amount_wei"`
	Block  uint64 `json:"block"`
}

// MarketStatus fetches the chain side's status.
func (c *Client) MarketStatus(ctx context.Context) (MarketStatus, error) {
	var s MarketStatus
	err := c.Get(ctx, "/v1/market/status", &s)
	return s, err
}

// Withdraw asks the daemon to withdraw its credit and waits for confirmation.
func (c *Client) Withdraw(ctx context.Context, req WithdrawRequest) (WithdrawResult, error) {
	var r WithdrawResult
	err := c.Post(ctx, "/v1/market/withdraw", req, &r)
	return r, err
}

// PostJobRequest is the body of POST /v1/market/jobs: a job to post, paid in ETH from the
// node's account. Amounts are decimal wei.
type PostJobRequest struct {
	ManifestCID  string `json:"manifest_cid"`
	ManifestHash string `json:"manifest_hash"` // hex sha256 of the manifest's bytes
	// Threshold is the evaluation threshold × 10⁶, as the contract compares scores.
	Threshold  uint32   `json:"threshold"`
	Validators []string `json:"validators"`
	Quorum     uint8    `json:"quorum"`
	// Token is the ERC-20 the job pays in (reward, fees, bond); empty for ETH.
	Token               string `json:"token,omitempty"`
	RewardWei           string `json:"reward_wei"`
	ValidatorFeeWei     string `json:"validator_fee_wei"`
	BondWei             string `json:"bond_wei"`
	AcceptWithinSeconds uint64 `json:"accept_within_seconds"`
	RunWindowSeconds    uint32 `json:"run_window_seconds"`
	AttestWindowSeconds uint32 `json:"attest_window_seconds"`
	// ValidatorCount, when set, posts the job on JobMarketV2: that many staked validators
	// are drawn at acceptance (Validators stays empty), they commit within
	// CommitWindowSeconds of the submission and reveal within RevealWindowSeconds after,
	// and LowerIsBetter is the metric's direction. ETH jobs only.
	ValidatorCount      uint8  `json:"validator_count,omitempty"`
	LowerIsBetter       bool   `json:"lower_is_better,omitempty"`
	CommitWindowSeconds uint32 `json:"commit_window_seconds,omitempty"`
	RevealWindowSeconds uint32 `json:"reveal_window_seconds,omitempty"`
}

// PostJobResult is the answer to POST /v1/market/jobs.
type PostJobResult struct {
	JobID  string `json:"job_id"`
	TxHash string `json:"tx_hash"`
	// Contract is "JobMarketV2" for a job posted there, empty for the JobMarket.
	Contract string `json:"contract,omitempty"`
}

// JobResult is the answer to GET /v1/market/jobs/{id}/result.
type JobResult struct {
	JobID         string `json:"job_id"`
	CheckpointCID string `json:"checkpoint_cid"`
	ResultHash    string `json:"result_hash"`
}

// PostJob posts a job through the daemon's account.
func (c *Client) PostJob(ctx context.Context, req PostJobRequest) (PostJobResult, error) {
	var r PostJobResult
	err := c.Post(ctx, "/v1/market/jobs", req, &r)
	return r, err
}

// JobResult reads what a provider submitted for a job.
func (c *Client) JobResult(ctx context.Context, id string) (JobResult, error) {
	var r JobResult
	err := c.Get(ctx, "/v1/market/jobs/"+url.PathEscape(id)+"/result", &r)
	return r, err
}

// ChainJob is a job as the contract records it: GET /v1/market/jobs/{id}. Amounts are
// decimal wei.
type ChainJob struct {
	JobID    string `json:"job_id"`
	State    string `json:"state"`
	Sponsor  string `json:"sponsor"`
	Provider string `json:"provider,omitempty"`
	// ManifestCID is the manifest posted with the job.
	ManifestCID string    `json:"manifest_cid,omitempty"`
	Reward      string    `json:"reward_wei"`
	Fee         string    `json:"validator_fee_wei"`
	Bond        string    `json:"bond_wei"`
	Passes      int       `json:"passes"`
	Fails       int       `json:"fails"`
	Deadline    time.Time `json:"deadline,omitzero"`
	// Settlement says who the contract credited, once the job is over.
	Settlement string `json:"settlement,omitempty"`
}

// ChainJob reads a job's on-chain record through the daemon.
func (c *Client) ChainJob(ctx context.Context, id string) (ChainJob, error) {
	var j ChainJob
	err := c.Get(ctx, "/v1/market/jobs/"+url.PathEscape(id), &j)
	return j, err
}

// Earnings is the node's money on the JobMarket, in ETH (decimal wei): what it was
// credited as provider and as validator, what it withdrew, and the credit still there.
type Earnings struct {
	RewardsWei   string `json:"rewards_wei"`
	FeesWei      string `json:"validator_fees_wei"`
	WithdrawnWei string `json:"withdrawn_wei"`
	CreditWei    string `json:"credit_wei,omitempty"`
	// AutoWithdrawWei is the credit at which the node withdraws by itself; empty: never.
	AutoWithdrawWei string `json:"auto_withdraw_wei,omitempty"`
	// Tokens are the same sums for jobs paid in ERC-20 tokens, one per token, in the
	// token's smallest unit; the fields above count ETH only.
	Tokens []TokenEarnings `json:"tokens,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// TokenEarnings is what the node earned and withdrew in one ERC-20 token.
type TokenEarnings struct {
	Token     string `json:"token"`
	Rewards   string `json:"rewards"`
	Fees      string `json:"validator_fees"`
	Withdrawn string `json:"withdrawn"`
	Credit    string `json:"credit,omitempty"`
}

// LedgerEntry is one movement of the node's money on the JobMarket (ETH, decimal wei):
// a "reward" or validator "fee" credited for a job, or a "withdrawal".
type LedgerEntry struct {
	Kind  string `json:"kind"`
	Wei   string `json:"wei"`
	JobID string `json:"job_id,omitempty"`
	// Token is the ERC-20 contract of a token job's amount (in its smallest unit); empty
	// for ETH.
	Token string `json:"token,omitempty"`
	// TxHash is the transaction that credited or paid the amount.
	TxHash string    `json:"tx,omitempty"`
	At     time.Time `json:"at"`
}

// CancelJob cancels a job this node posted that no provider took yet, and waits for the
// transaction's confirmation.
func (c *Client) CancelJob(ctx context.Context, id string) (PostJobResult, error) {
	var r PostJobResult
	err := c.Post(ctx, "/v1/market/jobs/"+url.PathEscape(id)+"/cancel", struct{}{}, &r)
	return r, err
}

// Ledger lists the movements of the node's money on the JobMarket, oldest first.
func (c *Client) Ledger(ctx context.Context) ([]LedgerEntry, error) {
	var out []LedgerEntry
	err := c.Get(ctx, "/v1/market/ledger", &out)
	return out, err
}

// PostedJobs lists the jobs this node posted, newest first, as the chain records them.
func (c *Client) PostedJobs(ctx context.Context) ([]ChainJob, error) {
	var out []ChainJob
	err := c.Get(ctx, "/v1/market/posted", &out)
	return out, err
}
