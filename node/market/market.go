package market

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/deploy"
	"github.com/gpunode/gpunode/node/api"
)

// ErrNoChain means no chain is configured and no dev chain deployment file exists: the
// node can run without the chain side (it takes no jobs).
var ErrNoChain = errors.New("no chain configured")

// Market is the node's chain side: it watches the JobMarket, hands confirmed events to
// the node, and sends the node's transactions.
type Market struct {
	cfg      Config
	log      *slog.Logger
	client   *Client
	contract common.Address
	watcher  *Watcher
	tx       *TxManager // nil when watch-only
	abi      *bindings.JobMarket
	metrics  *Metrics
}

// Collector returns the chain side's metrics, for a caller that passed a nil Registerer
// to New and registers them itself.
func (m *Market) Collector() prometheus.Collector { return m.metrics }

// New resolves the deployment, connects to the RPC endpoint (lazily), unlocks the key when
// a password is configured, and prepares the watcher; onEvent receives every confirmed
// JobMarket event exactly once (nil: events are only counted).
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer, onEvent Handler) (*Market, error) {
	if cfg.Deployment != "" {
		d, err := deploy.Read(cfg.Deployment)
		if errors.Is(err, os.ErrNotExist) && cfg.RPCURL == "" {
			return nil, fmt.Errorf("%w: set market.rpc_url, chain_id and job_market, or run `gpunode devchain --out %s`", ErrNoChain, cfg.Deployment)
		}
		if err != nil {
			return nil, err
		}
		cfg.RPCURL, cfg.ChainID, cfg.JobMarket, cfg.StartBlock = d.RPCURL, d.ChainID, d.JobMarket.Hex(), d.DeployBlock
		if d.JobMarketV2 != (common.Address{}) {
			cfg.JobMarketV2 = d.JobMarketV2.Hex()
		}
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("market config: %w", errors.Join(errs...))
	}
	log = log.With("component", "market")
	m := NewMetrics(reg)
	client, err := Dial(ClientConfig{URL: cfg.RPCURL, CallTimeout: cfg.CallTimeout, Retries: cfg.Retries}, log, m)
	if err != nil {
		return nil, err
	}
	mk := &Market{cfg: cfg, log: log, client: client, contract: common.HexToAddress(cfg.JobMarket), abi: bindings.NewJobMarket(), metrics: m}
	if onEvent == nil {
		onEvent = func(context.Context, Event) error { return nil }
	}
	var v2 common.Address
	if cfg.JobMarketV2 != "" {
		v2 = common.HexToAddress(cfg.JobMarketV2)
	}
	mk.watcher = NewWatcher(WatcherConfig{
		Contract: mk.contract, ContractV2: v2, StartBlock: cfg.StartBlock, Confirmations: cfg.Confirmations, PollInterval: cfg.PollInterval,
	}, client, FileCursor(cfg.CursorFile), onEvent, log, m)
	key, err := cfg.unlock()
	switch {
	case errors.Is(err, ErrNoPassword):
		log.Warn("no keystore password configured: watch-only, the node will not accept jobs or withdraw", "password_env", cfg.PasswordEnv)
	case err != nil:
		client.Close()
		return nil, err
	default:
		mk.tx = NewTxManager(cfg.txConfig(), client, key, log, m)
		account := mk.tx.From()
		m.balance.watch(func(ctx context.Context) (*big.Int, error) { return client.BalanceAt(ctx, account) })
	}
	return mk, nil
}

// unlock opens the configured account with the configured password source.
func (c Config) unlock() (*ecdsa.PrivateKey, error) {
	pw, err := PasswordSource{File: c.PasswordFile, Env: c.PasswordEnv}.Read()
	if err != nil {
		return nil, err
	}
	w := NewWallet(c.Keystore, false)
	addr, err := w.pick(c.Account)
	if err != nil {
		return nil, err
	}
	return w.Unlock(addr, pw)
}

// pick returns account, or the only key when account is empty.
func (w *Wallet) pick(account string) (common.Address, error) {
	if account != "" {
		return common.HexToAddress(account), nil
	}
	list, err := w.List()
	if err != nil {
		return common.Address{}, err
	}
	if len(list) != 1 {
		return common.Address{}, fmt.Errorf("keystore %s holds %d keys: set account (or create one with `gpunode wallet new`)", w.dir, len(list))
	}
	return list[0], nil
}

// ErrWrongChain means the RPC endpoint serves another chain than the configured one.
var ErrWrongChain = errors.New("rpc endpoint serves another chain")

// Run watches the chain until ctx ends. Chain faults are retried, never returned; an
// endpoint serving another chain id is a configuration error and ends Run.
func (m *Market) Run(ctx context.Context) error {
	defer m.client.Close()
	wait := time.Second
	for {
		id, err := m.client.ChainID(ctx)
		if err == nil {
			if id.Uint64() != m.cfg.ChainID {
				return fmt.Errorf("%w: %s reports chain id %s, configured %d", ErrWrongChain, m.cfg.RPCURL, id, m.cfg.ChainID)
			}
			break
		}
		m.watcher.fail(fmt.Errorf("chain id: %w", err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
	return m.watcher.Run(ctx)
}

// DecodeEvent returns the typed binding for a JobMarket event (*bindings.JobMarketJobPosted
// and so on); an error for a log the ABI does not know or cannot decode.
func DecodeEvent(e Event) (any, error) {
	if e.V2 {
		return decodeEventV2(e)
	}
	a := bindings.NewJobMarket()
	l := &e.Log
	switch e.Name {
	case "ProviderRegistered":
		return a.UnpackProviderRegisteredEvent(l)
	case "JobPosted":
		return a.UnpackJobPostedEvent(l)
	case "JobCancelled":
		return a.UnpackJobCancelledEvent(l)
	case "JobAccepted":
		return a.UnpackJobAcceptedEvent(l)
	case "ResultSubmitted":
		return a.UnpackResultSubmittedEvent(l)
	case "Attested":
		return a.UnpackAttestedEvent(l)
	case "JobCompleted":
		return a.UnpackJobCompletedEvent(l)
	case "JobRejected":
		return a.UnpackJobRejectedEvent(l)
	case "JobExpired":
		return a.UnpackJobExpiredEvent(l)
	case "Withdrawn":
		return a.UnpackWithdrawnEvent(l)
	}
	return nil, fmt.Errorf("log %s: not a known JobMarket event", e.ID())
}

// Config returns the market's configuration, resolved.
func (m *Market) Config() Config { return m.cfg }

// Status reports the chain side for the node's status page.
func (m *Market) Status() api.MarketStatus {
	w := m.watcher.Status()
	s := api.MarketStatus{
		ChainID: m.cfg.ChainID, RPCURL: m.cfg.RPCURL, JobMarket: m.contract.Hex(), Connected: w.Connected,
		Head: w.Head, HandledBlock: w.Handled, Confirmations: m.cfg.Confirmations, LastError: w.LastError, LastErrorAt: w.LastErrorAt,
	}
	if m.tx != nil {
		s.Account = m.tx.From().Hex()
	}
	return s
}

// Credit is account's withdrawable JobMarket balance in token (zero address: ETH).
func (m *Market) Credit(ctx context.Context, token, account common.Address) (*big.Int, error) {
	return Credit(ctx, m.client, m.contract, token, account)
}

// Credit reads a JobMarket credit through any client.
func Credit(ctx context.Context, c *Client, contract, token, account common.Address) (*big.Int, error) {
	a := bindings.NewJobMarket()
	out, err := c.CallContract(ctx, ethereum.CallMsg{To: &contract, Data: a.PackCredit(token, account)})
	if err != nil {
		return nil, fmt.Errorf("credit of %s: %w", account, err)
	}
	return a.UnpackCredit(out)
}

// ErrWatchOnly means an action needs the node's key, which is not unlocked.
var ErrWatchOnly = errors.New("no unlocked key: configure the keystore password (password_file or the password environment variable)")

// Withdraw pulls the node's whole credit in token and waits for confirmation.
func (m *Market) Withdraw(ctx context.Context, token common.Address) (*types.Receipt, *big.Int, error) {
	if m.tx == nil {
		return nil, nil, ErrWatchOnly
	}
	return Withdraw(ctx, m.tx, m.client, m.contract, token)
}

// Withdraw pulls tx's account's credit in token through tx and returns the receipt and amount.
func Withdraw(ctx context.Context, tx *TxManager, c *Client, contract, token common.Address) (*types.Receipt, *big.Int, error) {
	amount, err := Credit(ctx, c, contract, token, tx.From())
	if err != nil {
		return nil, nil, err
	}
	r, err := tx.Send(ctx, contract, nil, bindings.NewJobMarket().PackWithdraw(token))
	if err != nil {
		return nil, nil, fmt.Errorf("withdraw: %w", err)
	}
	return r, amount, nil
}

// WithdrawCredit withdraws the node's credit in req's token (ETH when empty) and waits
// for confirmation: what POST /v1/market/withdraw does.
func (m *Market) WithdrawCredit(ctx context.Context, req api.WithdrawRequest) (api.WithdrawResult, error) {
	var token common.Address
	if req.Token != "" {
		if !common.IsHexAddress(req.Token) {
			return api.WithdrawResult{}, api.WithClass(api.ErrInvalidArgument, fmt.Errorf("token %q: not an address", req.Token))
		}
		token = common.HexToAddress(req.Token)
	}
	rec, amount, err := m.Withdraw(ctx, token)
	if err != nil {
		return api.WithdrawResult{}, txError(err)
	}
	return api.WithdrawResult{TxHash: rec.TxHash.Hex(), Amount: amount.String(), Block: rec.BlockNumber.Uint64()}, nil
}
