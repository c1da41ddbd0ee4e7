package poolpay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/node/pool"
)

// Chain is what the payouts need of the chain side (node/market's Market): calls and
// transactions to the PoolPayouts contract from the node's account, its balance, and
// its JobMarket credit.
type Chain interface {
	// Account is the node's account; the zero address when watch-only.
	Account() common.Address
	Call(ctx context.Context, to common.Address, data []byte) ([]byte, error)
	SendTo(ctx context.Context, what string, to common.Address, value *big.Int, data []byte) (*types.Receipt, error)
	Deploy(ctx context.Context, what string, code []byte) (common.Address, *types.Receipt, error)
	Balance(ctx context.Context, account common.Address) (*big.Int, error)
	GasCost(ctx context.Context, gas uint64) (*big.Int, error)
	// Settled waits until none of the account's transactions is pending.
	Settled(ctx context.Context) error
	Credit(ctx context.Context, token, account common.Address) (*big.Int, error)
	Withdraw(ctx context.Context, token common.Address) (*types.Receipt, *big.Int, error)
}

// publishGas is what a publish costs at most (about 113,600 measured by node/pool's
// TestPayoutGas), with room: the account must hold it beside the epoch's total.
const publishGas = 150_000

// EpochCount reads how many epochs contract has published.
func EpochCount(ctx context.Context, c Chain, contract common.Address) (uint64, error) {
	out, err := c.Call(ctx, contract, pool.PackEpochCount())
	if err != nil {
		return 0, fmt.Errorf("PoolPayouts %s: epoch count: %w", contract, err)
	}
	n, err := pool.UnpackEpochCount(out)
	if err != nil {
		return 0, fmt.Errorf("PoolPayouts %s: epoch count: %w", contract, err)
	}
	return n, nil
}

// OnChainEpoch reads one published epoch of contract.
func OnChainEpoch(ctx context.Context, c Chain, contract common.Address, n uint64) (pool.OnChainEpoch, error) {
	out, err := c.Call(ctx, contract, pool.PackGetEpoch(n))
	if err != nil {
		return pool.OnChainEpoch{}, fmt.Errorf("PoolPayouts %s: epoch %d: %w", contract, n, err)
	}
	e, err := pool.UnpackGetEpoch(out)
	if err != nil {
		return pool.OnChainEpoch{}, fmt.Errorf("PoolPayouts %s: epoch %d: %w", contract, n, err)
	}
	return e, nil
}

// Claimed reads whether member has claimed its payout of epoch n.
func Claimed(ctx context.Context, c Chain, contract common.Address, n uint64, member common.Address) (bool, error) {
	out, err := c.Call(ctx, contract, pool.PackClaimed(n, member))
	if err != nil {
		return false, fmt.Errorf("PoolPayouts %s: claimed: %w", contract, err)
	}
	return pool.UnpackClaimed(out)
}

// contractFile is the data-dir file that keeps the address of the deployed contract.
type contractFile struct {
	Contract    common.Address `json:"contract"`
	Coordinator common.Address `json:"coordinator"`
	TxHash      string         `json:"tx"`
	Block       uint64         `json:"block"`
}

// Contract returns the coordinator's PoolPayouts: configured (an address, checked to be a
// PoolPayouts of this account), else the one it deployed before (its address kept in
// file), else a new one it deploys now, whose members have claimWindow to claim an epoch.
func Contract(ctx context.Context, c Chain, configured, file string, claimWindow time.Duration, log *slog.Logger) (common.Address, error) {
	self := c.Account()
	if self == (common.Address{}) {
		return common.Address{}, errors.New("pool payouts: the coordinator needs its unlocked market key (it publishes and funds the epochs)")
	}
	check := func(addr common.Address, from string) (common.Address, error) {
		out, err := c.Call(ctx, addr, pool.PackCoordinator())
		if err != nil {
			return common.Address{}, fmt.Errorf("PoolPayouts %s (%s): %w", addr, from, err)
		}
		co, err := pool.UnpackCoordinator(out)
		if err != nil {
			return common.Address{}, fmt.Errorf("PoolPayouts %s (%s): not a PoolPayouts contract (no code there on this chain?): %v", addr, from, err)
		}
		if co != self {
			return common.Address{}, fmt.Errorf("PoolPayouts %s (%s): its coordinator is %s, not this node's account %s", addr, from, co, self)
		}
		return addr, nil
	}
	if configured != "" {
		if !common.IsHexAddress(configured) {
			return common.Address{}, fmt.Errorf("pool.payouts_contract %q: not an address", configured)
		}
		return check(common.HexToAddress(configured), "pool.payouts_contract")
	}
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		var f contractFile
		if err := json.Unmarshal(b, &f); err != nil {
			return common.Address{}, fmt.Errorf("%s: %w (remove it to deploy a new PoolPayouts)", file, err)
		}
		return check(f.Contract, file)
	case !errors.Is(err, os.ErrNotExist):
		return common.Address{}, err
	}
	code, err := pool.PayoutsCode(self, claimWindow)
	if err != nil {
		return common.Address{}, err
	}
	addr, r, err := c.Deploy(ctx, "PoolPayouts", code)
	if err != nil {
		return common.Address{}, err
	}
	raw, _ := json.MarshalIndent(contractFile{Contract: addr, Coordinator: self, TxHash: r.TxHash.Hex(), Block: r.BlockNumber.Uint64()}, "", "  ")
	if err := os.MkdirAll(filepath.Dir(file), 0o750); err != nil {
		return common.Address{}, err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return common.Address{}, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return common.Address{}, err
	}
	log.Info("deployed the pool's PoolPayouts contract", "component", "poolpay", "contract", addr.Hex(), "tx", r.TxHash.Hex(),
		"gas_used", r.GasUsed, "claim_window", claimWindow, "kept_in", file)
	return addr, nil
}

// Publisher publishes the ledger's booked shares as epochs of the pool's PoolPayouts.
type Publisher struct {
	l        *Ledger
	c        Chain
	contract common.Address
	interval time.Duration
	log      *slog.Logger

	mu sync.Mutex // one publication at a time
}

// NewPublisher publishes l's shares to contract through c every interval.
func NewPublisher(l *Ledger, c Chain, contract common.Address, interval time.Duration, log *slog.Logger) *Publisher {
	return &Publisher{l: l, c: c, contract: contract, interval: interval, log: log.With("component", "poolpay")}
}

// Contract is the pool's PoolPayouts.
func (p *Publisher) Contract() common.Address { return p.contract }

// Published is an epoch the publisher put on chain.
type Published struct {
	EpochRecord
	// Withdrawn is the JobMarket credit withdrawn to fund it (nil: none).
	Withdrawn *big.Int
}

// ErrUnderfunded means the coordinator's account cannot fund an epoch even with its
// JobMarket credit withdrawn.
var ErrUnderfunded = errors.New("the pool's account cannot fund the epoch")

// Publish publishes every booked, unpublished share now as the next epoch, funded with
// their sum (withdrawing the account's JobMarket credit first if the account holds less);
// an epoch whose publication was under way (a crash, a failed send) is finished first,
// and is published once: the chain's epochs are checked for it before each send.
func (p *Publisher) Publish(ctx context.Context) (Published, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rec, ok, err := p.l.pending()
	if err != nil {
		return Published{}, err
	}
	if !ok {
		n, err := EpochCount(ctx, p.c, p.contract)
		if err != nil {
			return Published{}, err
		}
		if rec, err = p.l.prepare(p.contract, n, nil); err != nil {
			return Published{}, err
		}
		p.log.Info("pool epoch built", "contract", p.contract.Hex(), "epoch", rec.Number, "root", rec.Root.Hex(), "total_wei", rec.Total, "members", len(rec.Payouts), "jobs", len(rec.Jobs))
	}
	return p.complete(ctx, rec)
}

// complete puts a pending epoch on chain, once.
func (p *Publisher) complete(ctx context.Context, rec EpochRecord) (Published, error) {
	// A publish sent before a crash may still be in the mempool: let it be mined (or
	// dropped) before reading the chain's epochs.
	settle, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err := p.c.Settled(settle)
	cancel()
	if err != nil {
		return Published{}, fmt.Errorf("epoch %d: waiting for the account's pending transactions: %w", rec.Number, err)
	}
	n, err := EpochCount(ctx, p.c, p.contract)
	if err != nil {
		return Published{}, err
	}
	if rec.Contract == p.contract && n > rec.Number {
		on, err := OnChainEpoch(ctx, p.c, p.contract, rec.Number)
		if err != nil {
			return Published{}, err
		}
		if on.Root == rec.Root {
			p.log.Info("pool epoch found on chain: it was published before a restart", "epoch", rec.Number, "root", rec.Root.Hex())
			rec, err = p.l.markPublished(rec, rec.TxHash, rec.GasUsed)
			return Published{EpochRecord: rec}, err
		}
	}
	if rec.Contract != p.contract || n != rec.Number {
		// Another epoch took the number (or the contract changed): the leaves are bound to
		// both, so the same jobs are built again as the next epoch.
		old := rec.Number
		if rec, err = p.l.prepare(p.contract, n, &rec); err != nil {
			return Published{}, err
		}
		p.log.Warn("pool epoch renumbered: the chain's next epoch is another", "was", old, "epoch", n)
	}
	withdrawn, err := p.fund(ctx, rec.Total)
	if err != nil {
		return Published{}, fmt.Errorf("epoch %d: %w", rec.Number, err)
	}
	r, err := p.c.SendTo(ctx, fmt.Sprintf("publish pool epoch %d", rec.Number), p.contract, rec.Total, pool.PackPublish(rec.Epoch))
	if err != nil {
		return Published{}, err
	}
	rec, err = p.l.markPublished(rec, r.TxHash.Hex(), r.GasUsed)
	if err != nil {
		return Published{}, err
	}
	p.log.Info("pool epoch published", "epoch", rec.Number, "total_wei", rec.Total, "members", len(rec.Payouts), "tx", rec.TxHash, "gas_used", r.GasUsed)
	return Published{EpochRecord: rec, Withdrawn: withdrawn}, nil
}

// fund makes sure the account holds total plus the publish's gas, withdrawing its
// JobMarket credit (where the pool's rewards land) if it does not.
func (p *Publisher) fund(ctx context.Context, total *big.Int) (*big.Int, error) {
	self := p.c.Account()
	gas, err := p.c.GasCost(ctx, publishGas)
	if err != nil {
		return nil, err
	}
	need := new(big.Int).Add(total, gas)
	bal, err := p.c.Balance(ctx, self)
	if err != nil {
		return nil, err
	}
	if bal.Cmp(need) >= 0 {
		return nil, nil
	}
	credit, err := p.c.Credit(ctx, common.Address{}, self)
	if err != nil {
		return nil, err
	}
	var withdrawn *big.Int
	if credit.Sign() > 0 {
		r, amount, err := p.c.Withdraw(ctx, common.Address{})
		if err != nil {
			return nil, fmt.Errorf("withdraw the JobMarket credit to fund it: %w", err)
		}
		withdrawn = amount
		p.log.Info("withdrew the pool's JobMarket credit to fund an epoch", "wei", amount, "tx", r.TxHash.Hex())
		if bal, err = p.c.Balance(ctx, self); err != nil {
			return withdrawn, err
		}
	}
	if bal.Cmp(need) < 0 {
		return withdrawn, fmt.Errorf("%w: account %s holds %s wei and has no more JobMarket credit; the epoch needs %s wei (its total and gas)", ErrUnderfunded, self, bal, need)
	}
	return withdrawn, nil
}

// Due is when the booked shares are next to be published: an interval after the last
// epoch, or after the oldest unpublished booking; zero when nothing waits.
func (p *Publisher) Due() (time.Time, error) {
	if _, ok, err := p.l.pending(); err != nil || ok {
		return time.Now(), err
	}
	jobs, err := p.l.Jobs()
	if err != nil {
		return time.Time{}, err
	}
	var oldest time.Time
	for _, b := range jobs {
		if b.Epoch == nil && (oldest.IsZero() || b.BookedAt.Before(oldest)) {
			oldest = b.BookedAt
		}
	}
	if oldest.IsZero() {
		return time.Time{}, nil
	}
	epochs, err := p.l.Epochs(p.contract)
	if err != nil {
		return time.Time{}, err
	}
	from := oldest
	if len(epochs) > 0 {
		if last := epochs[len(epochs)-1].PublishedAt; last.After(from) {
			from = last
		}
	}
	return from.Add(p.interval), nil
}

// Run publishes whenever an epoch is due, until ctx ends; a failed publication is tried
// again a minute later (or at the next check).
func (p *Publisher) Run(ctx context.Context) error {
	check := min(p.interval, time.Minute)
	for {
		due, err := p.Due()
		if err != nil {
			p.log.Warn("pool payouts: read the ledger", "err", err)
		} else if !due.IsZero() && !time.Now().Before(due) {
			if _, err := p.Publish(ctx); err != nil && !errors.Is(err, ErrNothingToPublish) && ctx.Err() == nil {
				p.log.Warn("pool epoch not published; trying again", "err", err, "retry_in", check)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(check):
		}
	}
}
