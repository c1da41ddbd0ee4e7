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
	code, err := PayoutsCode(coordinator, claimWindow)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("deploy %w", err)
	}
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

// PayoutsCode is the creation code of a PoolPayouts for coordinator, with its
// constructor's arguments: what DeployPayouts sends, for a caller with its own
// transaction manager.
func PayoutsCode(coordinator common.Address, claimWindow time.Duration) ([]byte, error) {
	secs := claimWindow / time.Second
	if coordinator == (common.Address{}) || secs <= 0 || uint64(secs) > math.MaxUint32 {
		return nil, fmt.Errorf("PoolPayouts: need a coordinator and a claim window of 1s to %d s, got %s and %s", uint32(math.MaxUint32), coordinator, claimWindow)
	}
	return append(common.FromHex(payouts.PoolPayoutsMetaData.Bin), payoutsABI.PackConstructor(coordinator, uint64(secs))...), nil
}

// PackEpochCount asks how many epochs a PoolPayouts has published.
func PackEpochCount() []byte { return payoutsABI.PackEpochCount() }

// UnpackEpochCount decodes PackEpochCount's answer.
func UnpackEpochCount(b []byte) (uint64, error) {
	n, err := payoutsABI.UnpackEpochCount(b)
	if err != nil {
		return 0, err
	}
	if !n.IsUint64() {
		return 0, fmt.Errorf("epoch count %s out of range", n)
	}
	return n.Uint64(), nil
}

// OnChainEpoch is a published epoch as the contract keeps it.
type OnChainEpoch struct {
	Root     common.Hash
	Total    *big.Int
	Claimed  *big.Int
	Deadline time.Time
	Swept    bool
}

// PackGetEpoch asks for one published epoch.
func PackGetEpoch(epoch uint64) []byte {
	return payoutsABI.PackGetEpoch(new(big.Int).SetUint64(epoch))
}

// UnpackGetEpoch decodes PackGetEpoch's answer.
func UnpackGetEpoch(b []byte) (OnChainEpoch, error) {
	e, err := payoutsABI.UnpackGetEpoch(b)
	if err != nil {
		return OnChainEpoch{}, err
	}
	return OnChainEpoch{Root: e.Root, Total: e.Total, Claimed: e.Claimed, Deadline: time.Unix(int64(e.Deadline), 0), Swept: e.Swept}, nil
}

// PackCoordinator asks a PoolPayouts which account publishes its epochs.
func PackCoordinator() []byte { return payoutsABI.PackCoordinator() }

// UnpackCoordinator decodes PackCoordinator's answer.
func UnpackCoordinator(b []byte) (common.Address, error) { return payoutsABI.UnpackCoordinator(b) }
