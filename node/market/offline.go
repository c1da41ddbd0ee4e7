package market

import (
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// OfflineWithdrawal is a withdrawal signed outside the daemon, with a key of a keystore:
// `gpunode wallet withdraw` without a running node.
type OfflineWithdrawal struct {
	// RPCURL, ChainID (0: asked of the endpoint) and Contract say where the JobMarket is.
	RPCURL   string
	ChainID  uint64
	Contract common.Address
	// Token is the currency withdrawn: the zero address for ETH, else an ERC-20 token.
	Token common.Address
	// Wallet holds the key; Account picks it (empty: the only key), Password unlocks it.
	Wallet   *Wallet
	Account  string
	Password string
	// Confirmations is how many blocks the withdrawal waits for once mined.
	Confirmations uint64
}

// WithdrawOffline pays out the account's whole credit in w.Token and waits for the
// confirmations, within ten minutes. It returns the receipt and the amount.
func WithdrawOffline(ctx context.Context, w OfflineWithdrawal, log *slog.Logger) (*types.Receipt, *big.Int, error) {
	list, err := w.Wallet.List()
	if err != nil {
		return nil, nil, err
	}
	addr := common.HexToAddress(w.Account)
	if w.Account == "" {
		if len(list) != 1 {
			return nil, nil, fmt.Errorf("keystore %s holds %d keys: pick one with --account", w.Wallet.Dir(), len(list))
		}
		addr = list[0]
	}
	key, err := w.Wallet.Unlock(addr, w.Password)
	if err != nil {
		return nil, nil, err
	}
	c, err := Dial(ClientConfig{URL: w.RPCURL, Retries: 3}, log, nil)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	chainID := w.ChainID
	if chainID == 0 {
		id, err := c.ChainID(ctx)
		if err != nil {
			return nil, nil, err
		}
		chainID = id.Uint64()
	}
	tc := DefaultTxConfig()
	tc.ChainID, tc.Confirmations, tc.PollInterval = chainID, w.Confirmations, 200*time.Millisecond
	return Withdraw(ctx, NewTxManager(tc, c, key, log, nil), c, w.Contract, w.Token)
}
