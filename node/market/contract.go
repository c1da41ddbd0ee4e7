package market

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// The node's calls to contracts other than the JobMarket (the pool's PoolPayouts), through
// the same client and transaction manager: one nonce sequence for all of the account's
// transactions.

// Call runs a read-only call of data against to at the latest block.
func (m *Market) Call(ctx context.Context, to common.Address, data []byte) ([]byte, error) {
	return m.client.CallContract(ctx, ethereum.CallMsg{To: &to, Data: data})
}

// SendTo sends data to the contract at to with value (wei, may be nil) and returns the
// receipt once confirmed; what names the call in errors. A call the contract would refuse
// returns its revert (contracts.IsRevert) without spending gas.
func (m *Market) SendTo(ctx context.Context, what string, to common.Address, value *big.Int, data []byte) (*types.Receipt, error) {
	if m.tx == nil {
		return nil, fmt.Errorf("%s: %w", what, ErrWatchOnly)
	}
	r, err := m.tx.Send(ctx, to, value, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return r, nil
}

// Deploy creates a contract from code (creation bytecode and constructor arguments) and
// returns its address once the creation is confirmed.
func (m *Market) Deploy(ctx context.Context, what string, code []byte) (common.Address, *types.Receipt, error) {
	if m.tx == nil {
		return common.Address{}, nil, fmt.Errorf("deploy %s: %w", what, ErrWatchOnly)
	}
	r, err := m.tx.Deploy(ctx, code)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("deploy %s: %w", what, err)
	}
	return r.ContractAddress, r, nil
}

// Balance is account's ETH balance at the latest block.
func (m *Market) Balance(ctx context.Context, account common.Address) (*big.Int, error) {
	return m.client.BalanceAt(ctx, account)
}

// GasCost is what gas units cost at most at the current fees (the fee cap the node would
// send with): what an account must hold beyond a call's value.
func (m *Market) GasCost(ctx context.Context, gas uint64) (*big.Int, error) {
	if m.tx == nil {
		return nil, ErrWatchOnly
	}
	_, feeCap, err := m.tx.fees(ctx)
	if err != nil {
		return nil, err
	}
	return new(big.Int).Mul(feeCap, new(big.Int).SetUint64(gas)), nil
}

// ErrTxsPending means the account still had transactions in the mempool when Settled
// gave up waiting.
var ErrTxsPending = errors.New("transactions still pending")

// Settled waits until none of the account's transactions is pending (the pending nonce
// has reached the mined one): after a restart, so that a transaction sent before the
// crash is mined (or dropped) before the node decides whether to send it again.
func (m *Market) Settled(ctx context.Context) error {
	if m.tx == nil {
		return ErrWatchOnly
	}
	for {
		pending, err := m.client.PendingNonceAt(ctx, m.tx.From())
		if err != nil {
			return err
		}
		mined, err := m.client.NonceAt(ctx, m.tx.From(), nil)
		if err != nil {
			return err
		}
		if pending <= mined {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: nonce %d mined, %d pending: %w", ErrTxsPending, mined, pending, ctx.Err())
		case <-time.After(m.cfg.PollInterval):
		}
	}
}

// Receipt returns a mined transaction's receipt.
func (m *Market) Receipt(ctx context.Context, tx common.Hash) (*types.Receipt, error) {
	return m.client.TransactionReceipt(ctx, tx)
}
