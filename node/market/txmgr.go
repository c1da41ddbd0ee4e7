package market

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"

	"github.com/gpunode/gpunode/contracts"
)

// ErrReverted means a mined transaction failed.
var ErrReverted = errors.New("transaction reverted")

// TxBackend is what the transaction manager needs of a chain client.
type TxBackend interface {
	PendingNonceAt(ctx context.Context, a common.Address) (uint64, error)
	NonceAt(ctx context.Context, a common.Address, block *big.Int) (uint64, error)
	EstimateGas(ctx context.Context, msg ethereum.CallMsg) (uint64, error)
	SuggestGasTipCap(ctx context.Context) (*big.Int, error)
	HeaderByNumber(ctx context.Context, n *big.Int) (*types.Header, error)
	SendTransaction(ctx context.Context, tx *types.Transaction) error
	TransactionReceipt(ctx context.Context, h common.Hash) (*types.Receipt, error)
}

// TxConfig configures transaction sending.
type TxConfig struct {
	// ChainID is the chain's id; it is part of every signature (EIP-155).
	ChainID uint64
	// Confirmations is how many blocks, counting the one that includes it, a
	// transaction needs before Send returns.
	Confirmations uint64
	// GasMarginPercent is added to the estimated gas limit.
	GasMarginPercent uint64
	// BumpAfter is how long a transaction may stay unmined before it is replaced with
	// a higher fee.
	BumpAfter time.Duration
	// BumpPercent raises tip and fee cap on each replacement (nodes require >= 10).
	BumpPercent uint64
	// MaxFeePerGas caps the fee cap in wei; bumping stops there.
	MaxFeePerGas *big.Int
	// PollInterval is how often receipts and the head are checked.
	PollInterval time.Duration
	// Timeout bounds one Send, bumps and confirmations included.
	Timeout time.Duration
}

// DefaultTxConfig returns conservative defaults.
func DefaultTxConfig() TxConfig {
	return TxConfig{
		ChainID: 1337, Confirmations: 3, GasMarginPercent: 20, BumpAfter: 45 * time.Second, BumpPercent: 20,
		MaxFeePerGas: new(big.Int).Mul(big.NewInt(500), big.NewInt(params.GWei)), PollInterval: time.Second, Timeout: 15 * time.Minute,
	}
}

// TxManager signs and sends transactions from one account: it hands out nonces locally so
// that concurrent sends do not collide, estimates gas, prices with EIP-1559 fees, replaces
// stuck transactions with higher fees and waits for confirmations.
type TxManager struct {
	cfg     TxConfig
	b       TxBackend
	key     *ecdsa.PrivateKey
	from    common.Address
	signer  types.Signer
	log     *slog.Logger
	metrics *Metrics

	mu        sync.Mutex
	nextNonce uint64
	haveNonce bool
}

// NewTxManager returns a manager sending from key's account; m may be nil.
func NewTxManager(cfg TxConfig, b TxBackend, key *ecdsa.PrivateKey, log *slog.Logger, m *Metrics) *TxManager {
	if m == nil {
		m = NewMetrics(nil)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.BumpPercent < 10 {
		cfg.BumpPercent = 10
	}
	chainID := new(big.Int).SetUint64(cfg.ChainID)
	return &TxManager{
		cfg: cfg, b: b, key: key, from: crypto.PubkeyToAddress(key.PublicKey),
		signer: types.LatestSignerForChainID(chainID), log: log.With("component", "market.tx"), metrics: m,
	}
}

// From is the sending account.
func (m *TxManager) From() common.Address { return m.from }

// Send runs data against to with value and returns the receipt once it has the
// configured confirmations. A call that would revert returns the decoded revert
// (contracts.RevertError) without spending a nonce.
func (m *TxManager) Send(ctx context.Context, to common.Address, value *big.Int, data []byte) (*types.Receipt, error) {
	return m.SendWithGasFloor(ctx, to, value, data, 0)
}

// SendWithGasFloor is Send with a gas limit of at least floor: for calls whose cost
// depends on transactions mined before them in the same block, which the estimate (made
// against the latest state) cannot see.
func (m *TxManager) SendWithGasFloor(ctx context.Context, to common.Address, value *big.Int, data []byte, floor uint64) (*types.Receipt, error) {
	return m.send(ctx, &to, value, data, floor)
}

// Deploy creates a contract from code (creation bytecode with its constructor arguments)
// and returns the receipt, whose ContractAddress is the new contract's, once confirmed.
func (m *TxManager) Deploy(ctx context.Context, code []byte) (*types.Receipt, error) {
	return m.send(ctx, nil, nil, code, 0)
}

// send is Send to a contract, or a creation when to is nil.
func (m *TxManager) send(ctx context.Context, to *common.Address, value *big.Int, data []byte, floor uint64) (*types.Receipt, error) {
	if m.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.cfg.Timeout)
		defer cancel()
	}
	if value == nil {
		value = new(big.Int)
	}
	gas, err := m.b.EstimateGas(ctx, ethereum.CallMsg{From: m.from, To: to, Value: value, Data: data})
	if err != nil {
		m.metrics.txs.WithLabelValues("estimate_failed").Inc()
		return nil, fmt.Errorf("estimate gas: %w", contracts.Revert(err))
	}
	gas += gas * m.cfg.GasMarginPercent / 100
	gas = max(gas, floor)
	tip, feeCap, err := m.fees(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := m.signAndSend(ctx, func(nonce uint64) *types.DynamicFeeTx {
		return &types.DynamicFeeTx{ChainID: new(big.Int).SetUint64(m.cfg.ChainID), Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: gas, To: to, Value: value, Data: data}
	})
	if err != nil {
		return nil, err
	}
	return m.wait(ctx, tx)
}

// fees returns an EIP-1559 tip and fee cap: the node's suggested tip, and a cap that
// survives the base fee doubling.
func (m *TxManager) fees(ctx context.Context) (tip, feeCap *big.Int, err error) {
	tip, err = m.b.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("suggest tip: %w", err)
	}
	head, err := m.b.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("head: %w", err)
	}
	feeCap = new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))
	if m.cfg.MaxFeePerGas != nil && feeCap.Cmp(m.cfg.MaxFeePerGas) > 0 {
		feeCap = new(big.Int).Set(m.cfg.MaxFeePerGas)
		if tip.Cmp(feeCap) > 0 {
			tip = new(big.Int).Set(feeCap)
		}
	}
	return tip, feeCap, nil
}

// signAndSend takes the next nonce, signs and sends. When the node says the nonce is
// used (another wallet sent from the same account), it resyncs once from the chain.
func (m *TxManager) signAndSend(ctx context.Context, build func(nonce uint64) *types.DynamicFeeTx) (*types.Transaction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if !m.haveNonce || attempt > 0 {
			// The pool's pending count can lag a block just mined: never go below the
			// chain's own count.
			n, err := m.b.PendingNonceAt(ctx, m.from)
			if err != nil {
				return nil, fmt.Errorf("nonce: %w", err)
			}
			mined, err := m.b.NonceAt(ctx, m.from, nil)
			if err != nil {
				return nil, fmt.Errorf("nonce: %w", err)
			}
			m.nextNonce, m.haveNonce = max(n, mined), true
		}
		tx, err := types.SignNewTx(m.key, m.signer, build(m.nextNonce))
		if err != nil {
			return nil, err
		}
		err = m.b.SendTransaction(ctx, tx)
		if err == nil {
			m.nextNonce++
			m.metrics.txs.WithLabelValues("sent").Inc()
			m.log.Info("transaction sent", "tx", tx.Hash(), "nonce", tx.Nonce(), "tip", tx.GasTipCap(), "fee_cap", tx.GasFeeCap())
			return tx, nil
		}
		if attempt == 0 && isNonceError(err) {
			m.log.Warn("nonce out of sync; resyncing", "nonce", m.nextNonce, "err", err)
			continue
		}
		m.metrics.txs.WithLabelValues("send_failed").Inc()
		return nil, fmt.Errorf("send: %w", contracts.Revert(err))
	}
}

func isNonceError(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "nonce too low") || strings.Contains(s, "nonce too high") || strings.Contains(s, "already known")
}

// wait polls for a receipt of tx or of any of its replacements, bumping the fee when it
// stays unmined, then waits for confirmations and checks the receipt is still canonical.
func (m *TxManager) wait(ctx context.Context, tx *types.Transaction) (*types.Receipt, error) {
	sent := []*types.Transaction{tx}
	lastSend := time.Now()
	for {
		for _, t := range sent {
			r, err := m.b.TransactionReceipt(ctx, t.Hash())
			if err != nil {
				continue // not mined yet (or RPC hiccup): look again next poll
			}
			r, err = m.confirm(ctx, t, r)
			if err != nil {
				return nil, err
			}
			if r == nil {
				break // reorged out while confirming: keep waiting
			}
			if r.Status != types.ReceiptStatusSuccessful {
				m.metrics.txs.WithLabelValues("reverted").Inc()
				return r, fmt.Errorf("tx %s: %w", t.Hash(), ErrReverted)
			}
			m.metrics.txs.WithLabelValues("confirmed").Inc()
			return r, nil
		}
		if m.cfg.BumpAfter > 0 && time.Since(lastSend) >= m.cfg.BumpAfter {
			last := sent[len(sent)-1]
			if bumped, err := m.bump(ctx, last); err != nil {
				m.log.Warn("fee bump failed", "tx", last.Hash(), "err", err)
			} else if bumped != nil {
				sent = append(sent, bumped)
			}
			lastSend = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("tx %s: not confirmed: %w", tx.Hash(), ctx.Err())
		case <-time.After(m.cfg.PollInterval):
		}
	}
}

// bump re-sends last's nonce with tip and fee cap raised by BumpPercent (nil when the
// cap is reached).
func (m *TxManager) bump(ctx context.Context, last *types.Transaction) (*types.Transaction, error) {
	raise := func(x *big.Int) *big.Int {
		y := new(big.Int).Mul(x, big.NewInt(int64(100+m.cfg.BumpPercent)))
		return y.Div(y, big.NewInt(100)).Add(y, big.NewInt(1))
	}
	tip, feeCap := raise(last.GasTipCap()), raise(last.GasFeeCap())
	if head, err := m.b.HeaderByNumber(ctx, nil); err == nil {
		if need := new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2))); need.Cmp(feeCap) > 0 {
			feeCap = need
		}
	}
	if m.cfg.MaxFeePerGas != nil && feeCap.Cmp(m.cfg.MaxFeePerGas) > 0 {
		m.log.Warn("transaction stuck at the fee cap", "tx", last.Hash(), "max_fee_per_gas", m.cfg.MaxFeePerGas)
		return nil, nil
	}
	tx, err := types.SignNewTx(m.key, m.signer, &types.DynamicFeeTx{
		ChainID: new(big.Int).SetUint64(m.cfg.ChainID), Nonce: last.Nonce(), GasTipCap: tip, GasFeeCap: feeCap,
		Gas: last.Gas(), To: last.To(), Value: last.Value(), Data: last.Data(),
	})
	if err != nil {
		return nil, err
	}
	if err := m.b.SendTransaction(ctx, tx); err != nil {
		return nil, err
	}
	m.metrics.bumps.Inc()
	m.log.Info("replaced stuck transaction with a higher fee", "old", last.Hash(), "new", tx.Hash(), "tip", tip, "fee_cap", feeCap)
	return tx, nil
}

// confirm waits until r has the configured confirmations; nil if the transaction left
// the canonical chain meanwhile.
func (m *TxManager) confirm(ctx context.Context, tx *types.Transaction, r *types.Receipt) (*types.Receipt, error) {
	for {
		head, err := m.b.HeaderByNumber(ctx, nil)
		if err == nil && head.Number.Uint64()+1 >= r.BlockNumber.Uint64()+m.cfg.Confirmations {
			again, err := m.b.TransactionReceipt(ctx, tx.Hash())
			if err != nil || again.BlockHash != r.BlockHash {
				return nil, nil
			}
			return again, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("tx %s: waiting for %d confirmations: %w", tx.Hash(), m.cfg.Confirmations, ctx.Err())
		case <-time.After(m.cfg.PollInterval):
		}
	}
}
