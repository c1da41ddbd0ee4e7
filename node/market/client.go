package market

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
)

// ClientConfig configures the RPC client.
type ClientConfig struct {
	// URL is the JSON-RPC endpoint (http, https, ws or an IPC path).
	URL string
	// CallTimeout bounds one RPC call, so a slow endpoint cannot hang the node.
	CallTimeout time.Duration
	// Retries is how many times a failed call is retried (transport errors only).
	Retries int
	// Backoff is the wait before the first retry; it doubles up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// Client is an Ethereum JSON-RPC client whose calls time out and retry transport
// failures with backoff. Contract reverts and other answers from the node are not retried.
type Client struct {
	cfg     ClientConfig
	rpc     *rpc.Client
	eth     *ethclient.Client
	log     *slog.Logger
	metrics *Metrics
}

// Dial connects lazily (an HTTP endpoint that is down is not an error until used); m may
// be nil.
func Dial(cfg ClientConfig, log *slog.Logger, m *Metrics) (*Client, error) {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.CallTimeout)
	defer cancel()
	rc, err := rpc.DialContext(ctx, cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("chain rpc %s: %w", cfg.URL, err)
	}
	return &Client{cfg: cfg, rpc: rc, eth: ethclient.NewClient(rc), log: log.With("component", "market.rpc"), metrics: m}, nil
}

// Close closes the connection.
func (c *Client) Close() { c.rpc.Close() }

// retryable reports whether err is a transport failure rather than an answer.
func retryable(err error) bool {
	var rpcErr rpc.Error
	if errors.As(err, &rpcErr) {
		return false
	}
	var de rpc.DataError
	if errors.As(err, &de) {
		return false
	}
	return !errors.Is(err, ethereum.NotFound) && !errors.Is(err, context.Canceled)
}

func do[T any](ctx context.Context, c *Client, name string, f func(ctx context.Context) (T, error)) (T, error) {
	wait := c.cfg.Backoff
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
		v, err := f(cctx)
		cancel()
		if err == nil {
			c.metrics.up.Set(1)
			return v, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return v, err
		}
		c.metrics.rpcErrors.Inc()
		c.metrics.up.Set(0)
		if attempt >= c.cfg.Retries {
			return v, fmt.Errorf("chain rpc %s: %w (after %d attempts)", name, err, attempt+1)
		}
		c.log.Debug("rpc call failed; retrying", "call", name, "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, c.cfg.MaxBackoff)
	}
}

// ChainID implements the chain id query.
func (c *Client) ChainID(ctx context.Context) (*big.Int, error) {
	return do(ctx, c, "eth_chainId", c.eth.ChainID)
}

// BlockNumber implements LogSource.
func (c *Client) BlockNumber(ctx context.Context) (uint64, error) {
	return do(ctx, c, "eth_blockNumber", c.eth.BlockNumber)
}

// HeaderByNumber implements LogSource and TxBackend.
func (c *Client) HeaderByNumber(ctx context.Context, n *big.Int) (*types.Header, error) {
	return do(ctx, c, "eth_getBlockByNumber", func(ctx context.Context) (*types.Header, error) { return c.eth.HeaderByNumber(ctx, n) })
}

// FilterLogs implements LogSource.
func (c *Client) FilterLogs(ctx context.Context, q ethereum.FilterQuery) ([]types.Log, error) {
	return do(ctx, c, "eth_getLogs", func(ctx context.Context) ([]types.Log, error) { return c.eth.FilterLogs(ctx, q) })
}

// PendingNonceAt implements TxBackend.
func (c *Client) PendingNonceAt(ctx context.Context, a common.Address) (uint64, error) {
	return do(ctx, c, "eth_getTransactionCount", func(ctx context.Context) (uint64, error) { return c.eth.PendingNonceAt(ctx, a) })
}

// NonceAt implements TxBackend.
func (c *Client) NonceAt(ctx context.Context, a common.Address, block *big.Int) (uint64, error) {
	return do(ctx, c, "eth_getTransactionCount", func(ctx context.Context) (uint64, error) { return c.eth.NonceAt(ctx, a, block) })
}

// EstimateGas implements TxBackend.
func (c *Client) EstimateGas(ctx context.Context, msg ethereum.CallMsg) (uint64, error) {
	return do(ctx, c, "eth_estimateGas", func(ctx context.Context) (uint64, error) { return c.eth.EstimateGas(ctx, msg) })
}

// SuggestGasTipCap implements TxBackend.
func (c *Client) SuggestGasTipCap(ctx context.Context) (*big.Int, error) {
	return do(ctx, c, "eth_maxPriorityFeePerGas", c.eth.SuggestGasTipCap)
}

// SendTransaction implements TxBackend. Not retried blindly: a resend of the same signed
// transaction is harmless ("already known"), so it is retried like the rest.
func (c *Client) SendTransaction(ctx context.Context, tx *types.Transaction) error {
	_, err := do(ctx, c, "eth_sendRawTransaction", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, c.eth.SendTransaction(ctx, tx)
	})
	return err
}

// TransactionReceipt implements TxBackend; not found is not retried.
func (c *Client) TransactionReceipt(ctx context.Context, h common.Hash) (*types.Receipt, error) {
	return do(ctx, c, "eth_getTransactionReceipt", func(ctx context.Context) (*types.Receipt, error) { return c.eth.TransactionReceipt(ctx, h) })
}

// CallContract runs a read-only call at the latest block.
func (c *Client) CallContract(ctx context.Context, msg ethereum.CallMsg) ([]byte, error) {
	return do(ctx, c, "eth_call", func(ctx context.Context) ([]byte, error) { return c.eth.CallContract(ctx, msg, nil) })
}

// BalanceAt returns an account's ETH balance at the latest block.
func (c *Client) BalanceAt(ctx context.Context, a common.Address) (*big.Int, error) {
	return do(ctx, c, "eth_getBalance", func(ctx context.Context) (*big.Int, error) { return c.eth.BalanceAt(ctx, a, nil) })
}
