// Package pool is a miner pool: its protocols and its money rules.
//
// Members report their inventory to the pool's coordinator in signed heartbeats
// (/gpunode/pool/heartbeat/1.0.0); the coordinator lists them, notices the ones whose
// heartbeats stop (Gone), and assigns jobs to live ones in signed dispatches
// (/gpunode/pool/dispatch/1.0.0), which a member takes from its coordinator alone.
//
// The pay the pool earns for a job is split among the members that worked on it
// (GPU-seconds × score, less the pool's fee: Divide), and published for the members to
// withdraw through the PoolPayouts contract (a Merkle distributor: the coordinator
// publishes a root over the members' amounts, funded with their sum, and each member
// claims its own with its proof: NewEpoch).
package pool

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/internal/configfile"
)

// Config is the node's part in a pool ([pool] in the node's file).
type Config struct {
	// Coordinator makes this node its pool's coordinator: members report to it.
	Coordinator bool `toml:"coordinator"`
	// CoordinatorPeer, on a member, is the coordinator's libp2p peer ID: the node
	// reports its inventory to it, and takes dispatches from it alone. Empty: no pool.
	CoordinatorPeer string `toml:"coordinator_peer"`
	// Heartbeat is how often a member reports; HeartbeatBound is how long the
	// coordinator waits for a member's next report before it counts the member gone.
	Heartbeat      configfile.Duration `toml:"heartbeat"`
	HeartbeatBound configfile.Duration `toml:"heartbeat_bound"`
	// FeeBPS is the pool's fee, in basis points (1/100 of a percent) of each job's reward,
	// kept by the coordinator before the split: 500 = 5 %. At most 10000.
	FeeBPS uint32 `toml:"fee_bps"`
	// PayoutInterval is how often a coordinator publishes the shares it booked as a
	// PoolPayouts epoch for the members to claim (`gpunode pool publish`: at once).
	PayoutInterval configfile.Duration `toml:"payout_interval"`
	// PayoutsContract is the coordinator's PoolPayouts contract. Empty: the coordinator
	// deploys one on its first start and keeps its address in the data directory.
	PayoutsContract string `toml:"payouts_contract"`
	// ClaimWindow is how long members have to claim an epoch of a PoolPayouts the
	// coordinator deploys; what is left after it goes back to the coordinator.
	ClaimWindow configfile.Duration `toml:"claim_window"`
}

// Default returns the shipped configuration: in no pool, no fee.
func Default() Config {
	return Config{
		Heartbeat: configfile.Duration(15 * time.Second), HeartbeatBound: configfile.Duration(time.Minute),
		PayoutInterval: configfile.Duration(24 * time.Hour), ClaimWindow: configfile.Duration(30 * 24 * time.Hour),
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.FeeBPS > MaxBPS {
		errs = append(errs, fmt.Errorf("fee_bps: %d is above %d (100 %%)", c.FeeBPS, MaxBPS))
	}
	if c.Heartbeat <= 0 || c.HeartbeatBound < 2*c.Heartbeat {
		errs = append(errs, fmt.Errorf("heartbeat_bound: %s must be at least twice heartbeat (%s), so that one lost report does not count a member gone", time.Duration(c.HeartbeatBound), time.Duration(c.Heartbeat)))
	}
	if c.PayoutInterval < configfile.Duration(time.Minute) {
		errs = append(errs, fmt.Errorf("payout_interval: %s is below one minute (each epoch costs a transaction)", time.Duration(c.PayoutInterval)))
	}
	if w := time.Duration(c.ClaimWindow); w < time.Hour || w/time.Second > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("claim_window: %s must be from 1h to %d s", w, uint32(math.MaxUint32)))
	}
	if c.PayoutsContract != "" && !common.IsHexAddress(c.PayoutsContract) {
		errs = append(errs, fmt.Errorf("payouts_contract: %q is not an address", c.PayoutsContract))
	}
	if c.CoordinatorPeer != "" {
		if c.Coordinator {
			errs = append(errs, errors.New("coordinator_peer: a coordinator reports to no other"))
		}
		if _, err := peer.Decode(c.CoordinatorPeer); err != nil {
			errs = append(errs, fmt.Errorf("coordinator_peer: %q is not a peer ID: %v", c.CoordinatorPeer, err))
		}
	}
	return errs
}

// MaxBPS is 100 % in basis points.
const MaxBPS = 10_000

// MaxMembers bounds the members one split names.
const MaxMembers = 10_000

// Work is what one member did for a job, as the coordinator measured it.
type Work struct {
	Member common.Address `json:"member"`
	// GPUSeconds is wall time × GPUs of the member's container (runtime.Result's); a
	// CPU-only member counts its container's wall time as one GPU's.
	GPUSeconds float64 `json:"gpu_seconds"`
	// Score is the member's DL hashrate (benchmark score, TFLOPS) when it worked.
	Score float64 `json:"score"`
}

// Share is one member's part of a split.
type Share struct {
	Member common.Address `json:"member"`
	// Weight is GPU-milliseconds × milli-TFLOPS: what the share is proportional to.
	Weight *big.Int `json:"weight"`
	Wei    *big.Int `json:"wei"`
}

// Split is how a reward is divided.
type Split struct {
	Reward *big.Int `json:"reward_wei"`
	// Fee is the pool's: FeeBPS of the reward, plus the remainder of the integer
	// division of the rest (less than one wei per member).
	Fee    *big.Int `json:"fee_wei"`
	Shares []Share  `json:"shares"` // by member address, ascending
}

// Errors of Divide.
var (
	ErrNoWork    = errors.New("no member did any measurable work")
	ErrBadWork   = errors.New("bad work record")
	ErrBadReward = errors.New("bad reward")
)

// Divide splits reward: the pool keeps feeBPS of it; the rest goes to the members in
// proportion to GPU-seconds × score, each rounded down, and what rounding leaves goes to
// the pool too, so that the fee and the shares add up to the reward exactly. A member
// named in several records is paid for their sum. GPU-seconds and scores are counted in
// thousandths, so the rule is exact integer arithmetic on those.
func Divide(reward *big.Int, feeBPS uint32, works []Work) (Split, error) {
	if reward == nil || reward.Sign() < 0 {
		return Split{}, fmt.Errorf("%w: %v", ErrBadReward, reward)
	}
	if feeBPS > MaxBPS {
		return Split{}, fmt.Errorf("%w: fee of %d basis points is above 100 %%", ErrBadReward, feeBPS)
	}
	if len(works) > MaxMembers {
		return Split{}, fmt.Errorf("%w: %d records, at most %d", ErrBadWork, len(works), MaxMembers)
	}
	weights := map[common.Address]*big.Int{}
	total := new(big.Int)
	for i, w := range works {
		if w.Member == (common.Address{}) {
			return Split{}, fmt.Errorf("%w %d: no member address", ErrBadWork, i)
		}
		gpuMs, err := thousandths(w.GPUSeconds)
		if err != nil {
			return Split{}, fmt.Errorf("%w %d (%s): gpu_seconds: %v", ErrBadWork, i, w.Member, err)
		}
		score, err := thousandths(w.Score)
		if err != nil {
			return Split{}, fmt.Errorf("%w %d (%s): score: %v", ErrBadWork, i, w.Member, err)
		}
		wt := new(big.Int).Mul(new(big.Int).SetUint64(gpuMs), new(big.Int).SetUint64(score))
		if weights[w.Member] == nil {
			weights[w.Member] = new(big.Int)
		}
		weights[w.Member].Add(weights[w.Member], wt)
		total.Add(total, wt)
	}
	if total.Sign() == 0 {
		return Split{}, ErrNoWork
	}
	fee := new(big.Int).Mul(reward, big.NewInt(int64(feeBPS)))
	fee.Quo(fee, big.NewInt(MaxBPS))
	rest := new(big.Int).Sub(reward, fee)
	s := Split{Reward: new(big.Int).Set(reward)}
	paid := new(big.Int)
	for m, wt := range weights {
		if wt.Sign() == 0 {
			continue
		}
		amt := new(big.Int).Mul(rest, wt)
		amt.Quo(amt, total)
		paid.Add(paid, amt)
		s.Shares = append(s.Shares, Share{Member: m, Weight: wt, Wei: amt})
	}
	sort.Slice(s.Shares, func(i, j int) bool { return s.Shares[i].Member.Cmp(s.Shares[j].Member) < 0 })
	s.Fee = new(big.Int).Sub(reward, paid)
	return s, nil
}

// maxThousandths keeps a weight's factors (and their product) far from overflow: 10¹⁵
// thousandths is 31,000 GPU-years, or a million TFLOPS.
const maxThousandths = 1e15

func thousandths(v float64) (uint64, error) {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("%v is not a number", v)
	case v < 0:
		return 0, fmt.Errorf("%v is negative", v)
	case v*1000 > maxThousandths:
		return 0, fmt.Errorf("%v is implausibly large", v)
	}
	return uint64(math.Round(v * 1000)), nil
}

// Owed sums what the splits owe each member.
func Owed(splits ...Split) map[common.Address]*big.Int {
	out := map[common.Address]*big.Int{}
	for _, s := range splits {
		for _, sh := range s.Shares {
			if out[sh.Member] == nil {
				out[sh.Member] = new(big.Int)
			}
			out[sh.Member].Add(out[sh.Member], sh.Wei)
		}
	}
	return out
}
