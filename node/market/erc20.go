package market

import (
	"context"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// erc20 is the part of the ERC-20 interface a provider needs to lock a bond in a token:
// the JobMarket pulls the bond with transferFrom, so the provider approves it first.
var erc20 = func() abi.ABI {
	a, err := abi.JSON(strings.NewReader(`[
		{"type":"function","name":"approve","stateMutability":"nonpayable","inputs":[{"name":"spender","type":"address"},{"name":"value","type":"uint256"}],"outputs":[{"name":"","type":"bool"}]},
		{"type":"function","name":"allowance","stateMutability":"view","inputs":[{"name":"owner","type":"address"},{"name":"spender","type":"address"}],"outputs":[{"name":"","type":"uint256"}]}
	]`))
	if err != nil {
		panic(err)
	}
	return a
}()

// allowance is how much of token the JobMarket may pull from the node's account.
func (m *Market) allowance(ctx context.Context, token common.Address) (*big.Int, error) {
	data, err := erc20.Pack("allowance", m.Account(), m.contract)
	if err != nil {
		return nil, err
	}
	out, err := m.client.CallContract(ctx, ethereum.CallMsg{To: &token, Data: data})
	if err != nil {
		return nil, fmt.Errorf("allowance of %s: %w", token, err)
	}
	v, err := erc20.Unpack("allowance", out)
	if err != nil || len(v) != 1 {
		return nil, fmt.Errorf("allowance of %s: %v", token, err)
	}
	return v[0].(*big.Int), nil
}

// approve lets the JobMarket pull amount of token from the node's account, unless an
// earlier approval still covers it.
func (m *Market) approve(ctx context.Context, token common.Address, amount *big.Int) error {
	if m.tx == nil {
		return ErrWatchOnly
	}
	have, err := m.allowance(ctx, token)
	if err != nil || have.Cmp(amount) >= 0 {
		return err
	}
	data, err := erc20.Pack("approve", m.contract, amount)
	if err != nil {
		return err
	}
	_, err = m.tx.Send(ctx, token, nil, data)
	return err
}

// AcceptJobWithTokenBond accepts job id whose bond is amount of token: it approves the
// JobMarket for the bond first unless an earlier approval still covers it, so a node
// that crashed between the two sends neither twice.
func (m *Market) AcceptJobWithTokenBond(ctx context.Context, id *big.Int, validators []common.Address, token common.Address, amount *big.Int) (*types.Receipt, error) {
	if err := m.approve(ctx, token, amount); err != nil {
		return nil, fmt.Errorf("accept job %s: approve the bond: %w", id, err)
	}
	return m.AcceptJob(ctx, id, validators, nil)
}
