package pool

import (
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings/payouts"
)

var payoutsABI = payouts.NewPoolPayouts()

// DeployPayouts sends the transaction that creates a PoolPayouts for the coordinator's
// account, whose members have claimWindow to claim each epoch. The caller waits for it
// (bind.WaitDeployed).
func DeployPayouts(opts *bind.TransactOpts, backend bind.ContractBackend, coordinator common.Address, claimWindow time.Duration) (common.Address, *types.Transaction, error) {
	secs := claimWindow / time.Second
	if coordinator == (common.Address{}) || secs <= 0 || uint64(secs) > math.MaxUint32 {
		return common.Address{}, nil, fmt.Errorf("deploy PoolPayouts: need a coordinator and a claim window of 1s to %d s, got %s and %s", uint32(math.MaxUint32), coordinator, claimWindow)
	}
	code := append(common.FromHex(payouts.PoolPayoutsMetaData.Bin), payoutsABI.PackConstructor(coordinator, uint64(secs))...)
	addr, tx, err := bind.DeployContract(opts, code, backend, nil)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("deploy PoolPayouts: %w", contracts.Revert(err))
	}
	return addr, tx, nil
}

// PackPublish is the coordinator's call that publishes and funds an epoch; send it with
// e.Total as its value.
func PackPublish(e Epoch) []byte { return payoutsABI.PackPublish(e.Root, e.Total) }

// PackClaim is the call that pays a member its payout; anyone may send it.
func PackClaim(e Epoch, p Payout) []byte {
	proof := make([][32]byte, len(p.Proof))
	for i, h := range p.Proof {
		proof[i] = h
	}
	return payoutsABI.PackClaim(new(big.Int).SetUint64(e.Number), p.Member, p.Wei, proof)
}

// PackSweep is the coordinator's call that takes back what was not claimed of an epoch
// once its claim window is over.
func PackSweep(epoch uint64) []byte { return payoutsABI.PackSweep(new(big.Int).SetUint64(epoch)) }

// PackClaimed and UnpackClaimed ask whether a member has claimed an epoch.
func PackClaimed(epoch uint64, member common.Address) []byte {
	return payoutsABI.PackClaimed(new(big.Int).SetUint64(epoch), member)
}

// UnpackClaimed decodes PackClaimed's answer.
func UnpackClaimed(b []byte) (bool, error) { return payoutsABI.UnpackClaimed(b) }
