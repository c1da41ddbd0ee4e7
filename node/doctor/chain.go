package doctor

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/params"
)

// Chain is what the chain checks ask of the JSON-RPC endpoint (node/market's client).
type Chain interface {
	ChainID(ctx context.Context) (*big.Int, error)
	HeaderByNumber(ctx context.Context, n *big.Int) (*types.Header, error)
	BalanceAt(ctx context.Context, a common.Address) (*big.Int, error)
}

// ChainConfig is the chain the node is configured for; an empty URL means none.
type ChainConfig struct {
	URL string
	ID  uint64
	// NotConfigured says why there is no chain, when URL is empty.
	NotConfigured string
	// Err is why the configured chain could not be reached at all (a deployment file
	// that does not read, an endpoint that cannot be dialled).
	Err error
}

// Fixes of the chain checks.
const (
	FixNoChain     = "set market.rpc_url, chain_id and job_market (or market.deployment), or run gpunode devchain for a local dev chain"
	FixChainRPC    = "check that the endpoint in market.rpc_url is up and reachable from this rig (curl -X POST -H 'Content-Type: application/json' --data '{\"jsonrpc\":\"2.0\",\"method\":\"eth_chainId\",\"params\":[],\"id\":1}' URL)"
	FixChainID     = "point market.rpc_url at an endpoint of the configured chain, or correct market.chain_id"
	FixClockBehind = "sync the clock: timedatectl set-ntp true (systemd-timesyncd or chrony), then check timedatectl status"
	FixClockAhead  = "check the clock (timedatectl status; timedatectl set-ntp true); if it is right, the endpoint in market.rpc_url serves a stalled chain"
	FixNoAccount   = "create the node's key with gpunode wallet new (or import one with gpunode wallet import)"
)

// ChainRPC checks that the endpoint answers and serves the configured chain.
func ChainRPC(ctx context.Context, c Chain, cfg ChainConfig) Result {
	const name = "chain-rpc"
	if cfg.URL == "" {
		return Result{Name: name, Status: Skip, Detail: "no chain configured (" + cfg.NotConfigured + "): the node takes no jobs", Fix: FixNoChain}
	}
	if cfg.Err != nil {
		return Result{Name: name, Status: Fail, Detail: cfg.Err.Error(), Fix: FixChainRPC}
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	id, err := c.ChainID(ctx)
	if err != nil {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s: %v", cfg.URL, err), Fix: FixChainRPC}
	}
	if id.Uint64() != cfg.ID || !id.IsUint64() {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s serves chain %s, the node is configured for chain %d", cfg.URL, id, cfg.ID), Fix: FixChainID}
	}
	return ok(name, "%s answers, chain %d", cfg.URL, cfg.ID)
}

// Clock skew bounds against the chain's latest block: a block from the future means
// this clock is behind; a latest block much older than now means it is ahead, or the
// chain stalled.
const (
	MaxClockBehind = 15 * time.Second
	MaxBlockAge    = 5 * time.Minute
)

// DevChainID is the dev chain's id (gpunode devchain). It mines a block every period and
// stamps each at least a second after the last, so its time runs ahead of real time and
// is no reference for this machine's clock.
const DevChainID = 1337

// Clock compares this clock with the timestamp of the chain's latest block.
func Clock(ctx context.Context, c Chain, cfg ChainConfig, now time.Time) Result {
	const name = "clock"
	switch {
	case cfg.URL == "":
		return skip(name, "no chain configured to compare the clock with")
	case cfg.ID == DevChainID:
		return skip(name, "the dev chain (chain id 1337) stamps its blocks ahead of real time: it is no reference for this clock")
	case cfg.Err != nil:
		return skip(name, "the chain does not answer (see the chain-rpc check)")
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	h, err := c.HeaderByNumber(ctx, nil)
	if err != nil {
		return skip(name, "the chain does not answer (see the chain-rpc check)")
	}
	block := time.Unix(int64(h.Time), 0)
	skew := block.Sub(now)
	switch {
	case skew > MaxClockBehind:
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("this clock is %s behind the chain's latest block %d: deadlines and records are judged wrongly", skew.Round(time.Second), h.Number), Fix: FixClockBehind}
	case -skew > MaxBlockAge:
		return Result{Name: name, Status: Warn, Detail: fmt.Sprintf("the chain's latest block %d is %s older than this clock: the clock runs ahead, or the chain has stalled", h.Number, (-skew).Round(time.Second)), Fix: FixClockAhead}
	}
	return ok(name, "within %s of the chain's latest block %d", skew.Abs().Round(time.Second), h.Number)
}

// DefaultMinBalanceWei is the balance under which the wallet check warns: 0.01 ETH,
// the GpunodeWalletLow alert's threshold.
var DefaultMinBalanceWei = big.NewInt(1e16)

// Wallet checks the node's account holds enough for gas. accountErr says why there is
// no account.
func Wallet(ctx context.Context, c Chain, cfg ChainConfig, account common.Address, accountErr error, min *big.Int) Result {
	const name = "wallet"
	switch {
	case cfg.URL == "":
		return skip(name, "no chain configured")
	case cfg.Err != nil:
		return skip(name, "the chain does not answer (see the chain-rpc check)")
	case accountErr != nil:
		return Result{Name: name, Status: Skip, Detail: "no account: " + accountErr.Error(), Fix: FixNoAccount}
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	bal, err := c.BalanceAt(ctx, account)
	if err != nil {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("balance of %s: %v", account.Hex(), err), Fix: FixChainRPC}
	}
	if bal.Cmp(min) < 0 {
		return Result{Name: name, Status: Warn,
			Detail: fmt.Sprintf("%s holds %s ETH, less than %s ETH: accepting, submitting and withdrawing cost gas", account.Hex(), ether(bal), ether(min)),
			Fix:    fmt.Sprintf("send at least %s ETH to %s", ether(new(big.Int).Sub(min, bal)), account.Hex())}
	}
	return ok(name, "%s holds %s ETH", account.Hex(), ether(bal))
}

func ether(wei *big.Int) string {
	f, _ := new(big.Float).Quo(new(big.Float).SetInt(wei), big.NewFloat(params.Ether)).Float64()
	return fmt.Sprintf("%.6g", f)
}
