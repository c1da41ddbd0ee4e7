package devchain

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
)

// Backend is what RegisterValidator needs of a chain client (an *ethclient.Client or a
// simulated backend's client).
type Backend interface {
	bind.ContractBackend
	bind.DeployBackend
	ChainID(ctx context.Context) (*big.Int, error)
}

// RegisterValidator registers key as a validator of the JobMarketV2 at market with the
// libp2p peerID that providers deliver checkpoint keys to, adding stake wei (nil: the
// market's minStake) to its stake, and waits for the transaction. Calling it again
// updates the peer ID and adds the stake.
func RegisterValidator(ctx context.Context, client Backend, market common.Address, key *ecdsa.PrivateKey, peerID string, stake *big.Int) error {
	if market == (common.Address{}) {
		return errors.New("register validator: no JobMarketV2 address (a deployment written before v2?)")
	}
	if peerID == "" {
		return errors.New("register validator: empty peer ID")
	}
	m := bindings.NewJobMarketV2()
	c := m.Instance(client, market)
	if stake == nil {
		min, err := bind.Call(c, &bind.CallOpts{Context: ctx}, m.PackMinStake(), m.UnpackMinStake)
		if err != nil {
			return fmt.Errorf("register validator: min stake: %w", contracts.Revert(err))
		}
		stake = min
	}
	id, err := client.ChainID(ctx)
	if err != nil {
		return fmt.Errorf("register validator: chain id: %w", err)
	}
	opts := bind.NewKeyedTransactor(key, id)
	opts.Context = ctx
	opts.Value = stake
	tx, err := bind.Transact(c, opts, m.PackRegisterValidator(peerID))
	if err != nil {
		return fmt.Errorf("register validator %s: %w", crypto.PubkeyToAddress(key.PublicKey), contracts.Revert(err))
	}
	r, err := bind.WaitMined(ctx, client, tx.Hash())
	if err != nil {
		return fmt.Errorf("register validator: %w", err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		return fmt.Errorf("register validator: transaction %s failed", tx.Hash())
	}
	return nil
}
