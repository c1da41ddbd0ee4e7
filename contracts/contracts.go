// Package contracts holds gpunode's Solidity contracts (the JobMarket escrow and provider
// registry, and JobMarketV2 with its staked validator registry, commit-reveal attestations
// and sealed checkpoints; PoolPayouts, a miner pool's Merkle distributor of its members' pay),
// their compiled artifacts, and helpers to deploy them and to turn their
// revert data into Go errors. The Go bindings are generated into contracts/bindings by
// `make contracts` (go run ./contracts/internal/gen).
package contracts

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/contracts/bindings/payouts"
)

// DeployJobMarket sends the transaction that creates a JobMarket. The caller waits for it
// (bind.WaitDeployed) before using the address.
func DeployJobMarket(opts *bind.TransactOpts, backend bind.ContractBackend) (common.Address, *types.Transaction, error) {
	addr, tx, err := bind.DeployContract(opts, common.FromHex(bindings.JobMarketMetaData.Bin), backend, nil)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("deploy JobMarket: %w", Revert(err))
	}
	return addr, tx, nil
}

// RegistryParams are JobMarketV2's constructor arguments.
type RegistryParams struct {
	// MinStake is the least stake (wei) a validator must hold to be drawn.
	MinStake *big.Int
	// SlashAmount is what a drawn validator that does not reveal loses (wei, at most MinStake).
	SlashAmount *big.Int
	// UnbondingPeriod is the time between unstake and withdrawStake (whole seconds).
	UnbondingPeriod time.Duration
}

// DeployJobMarketV2 sends the transaction that creates a JobMarketV2. The caller waits for
// it (bind.WaitDeployed) before using the address.
func DeployJobMarketV2(opts *bind.TransactOpts, backend bind.ContractBackend, p RegistryParams) (common.Address, *types.Transaction, error) {
	if p.MinStake == nil || p.SlashAmount == nil || p.MinStake.Sign() <= 0 || p.SlashAmount.Sign() <= 0 || p.SlashAmount.Cmp(p.MinStake) > 0 {
		return common.Address{}, nil, fmt.Errorf("deploy JobMarketV2: need 0 < slash amount <= min stake, got %v and %v", p.SlashAmount, p.MinStake)
	}
	secs := p.UnbondingPeriod / time.Second
	if secs <= 0 || secs > math.MaxUint32 {
		return common.Address{}, nil, fmt.Errorf("deploy JobMarketV2: unbonding period %s: must be 1s to %d s", p.UnbondingPeriod, uint32(math.MaxUint32))
	}
	args := bindings.NewJobMarketV2().PackConstructor(p.MinStake, p.SlashAmount, uint32(secs))
	addr, tx, err := bind.DeployContract(opts, append(common.FromHex(bindings.JobMarketV2MetaData.Bin), args...), backend, nil)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("deploy JobMarketV2: %w", Revert(err))
	}
	return addr, tx, nil
}

// RevertError is a contract's custom error (or Error(string)) decoded from revert data.
type RevertError struct {
	// Name is the Solidity error name, e.g. "NotValidator", or "Error" for require strings.
	Name string
	// Args are the decoded error arguments.
	Args []any
}

func (e *RevertError) Error() string {
	if len(e.Args) == 0 {
		return "contract reverted: " + e.Name
	}
	parts := make([]string, len(e.Args))
	for i, a := range e.Args {
		parts[i] = fmt.Sprint(a)
	}
	return fmt.Sprintf("contract reverted: %s(%s)", e.Name, strings.Join(parts, ", "))
}

// IsRevert reports whether err is (or wraps) a revert with the given error name.
func IsRevert(err error, name string) bool {
	var r *RevertError
	return errors.As(Revert(err), &r) && r.Name == name
}

type dataError interface {
	ErrorData() any
}

// known is every ABI whose errors Revert can name.
var known = func() []*abi.ABI {
	var out []*abi.ABI
	for _, md := range []*bind.MetaData{&bindings.JobMarketMetaData, &bindings.JobMarketV2MetaData, &payouts.PoolPayoutsMetaData} {
		a, err := md.ParseABI()
		if err != nil {
			panic(err)
		}
		out = append(out, a)
	}
	return out
}()

// Revert converts an RPC error carrying revert data into a *RevertError (wrapping the
// original error's message), and returns any other error unchanged.
func Revert(err error) error {
	if err == nil {
		return nil
	}
	var r *RevertError
	if errors.As(err, &r) {
		return err
	}
	var de dataError
	if !errors.As(err, &de) {
		return err
	}
	var data []byte
	switch d := de.ErrorData().(type) {
	case string:
		b, derr := hexutil.Decode(d)
		if derr != nil {
			return err
		}
		data = b
	case []byte:
		data = d
	default:
		return err
	}
	if dec := DecodeRevert(data); dec != nil {
		return dec
	}
	return err
}

// DecodeRevert names revert data by its selector; nil if unknown or too short.
func DecodeRevert(data []byte) *RevertError {
	if len(data) < 4 {
		return nil
	}
	if reason, err := abi.UnpackRevert(data); err == nil {
		return &RevertError{Name: "Error", Args: []any{reason}}
	}
	for _, a := range known {
		for name, e := range a.Errors {
			if [4]byte(e.ID[:4]) == [4]byte(data[:4]) {
				args, err := e.Inputs.Unpack(data[4:])
				if err != nil {
					return &RevertError{Name: name}
				}
				return &RevertError{Name: name, Args: args}
			}
		}
	}
	return nil
}
