package api

import (
	"context"
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
