package duties

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/validator"
)

// MarketV2 is what a validator's commit and reveal need of JobMarketV2 (market.V2).
type MarketV2 interface {
	Account() common.Address
	Job(ctx context.Context, id *big.Int) (bindings.JobMarketV2Job, error)
	Accepted(ctx context.Context, id *big.Int) (*bindings.JobMarketV2JobAccepted, error)
	Commit(ctx context.Context, id *big.Int, drawn []common.Address, commitment common.Hash) (*types.Receipt, error)
	Reveal(ctx context.Context, id *big.Int, drawn []common.Address, score uint32, salt common.Hash) (*types.Receipt, error)
}

// CommitReveal is validator.CommitReveal over JobMarketV2. Both calls are idempotent
// against the job's record (its committed and revealed bits), and Reveal waits until the
// contract takes reveals.
type CommitReveal struct {
	m MarketV2
	// Poll is the pause between two tries of a reveal that came too early.
	Poll time.Duration
}

var _ validator.CommitReveal = (*CommitReveal)(nil)

// NewCommitReveal returns the commit-reveal adapter over m.
func NewCommitReveal(m MarketV2) *CommitReveal { return &CommitReveal{m: m, Poll: time.Second} }

// seat returns the job's drawn list and this account's bit in it.
func (c *CommitReveal) seat(ctx context.Context, id string) (*big.Int, []common.Address, uint16, error) {
	n, ok := new(big.Int).SetString(strings.TrimPrefix(id, validator.V2Prefix), 10)
	if !ok {
		return nil, nil, 0, fmt.Errorf("job %q: not a decimal job id", id)
	}
	acc, err := c.m.Accepted(ctx, n)
	if err != nil {
		return nil, nil, 0, err
	}
	self := c.m.Account()
	for i, a := range acc.Validators {
		if a == self {
			return n, acc.Validators, 1 << i, nil
		}
	}
	return nil, nil, 0, fmt.Errorf("job %s: %s is not a drawn validator", id, self.Hex())
}

// Commit implements validator.CommitReveal.
func (c *CommitReveal) Commit(ctx context.Context, id string, commitment common.Hash) (string, error) {
	n, drawn, bit, err := c.seat(ctx, id)
	if err != nil {
		return "", err
	}
	v, err := c.m.Job(ctx, n)
	if err != nil {
		return "", err
	}
	if v.Committed&bit != 0 {
		return "already committed", nil
	}
	r, err := c.m.Commit(ctx, n, drawn, commitment)
	if err != nil {
		return "", err
	}
	return r.TxHash.Hex(), nil
}

// Reveal implements validator.CommitReveal.
func (c *CommitReveal) Reveal(ctx context.Context, id string, score uint32, salt common.Hash) (string, error) {
	n, drawn, bit, err := c.seat(ctx, id)
	if err != nil {
		return "", err
	}
	for {
		v, err := c.m.Job(ctx, n)
		if err != nil {
			return "", err
		}
		if v.Revealed&bit != 0 {
			return "already revealed", nil
		}
		if market.JobState(v.State) != market.V2Submitted {
			return "", fmt.Errorf("job %s is %s on chain: too late to reveal", id, market.V2StateName(v.State))
		}
		r, err := c.m.Reveal(ctx, n, drawn, score, salt)
		switch {
		case err == nil:
			return r.TxHash.Hex(), nil
		case contracts.IsRevert(err, "AlreadyRevealed"):
			return "already revealed", nil
		case !contracts.IsRevert(err, "RevealTooEarly"):
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(c.Poll):
		}
	}
}

// SubmittedSealed starts judging a JobMarketV2 job's sealed result, for a job this node
// has a duty of (recorded by Named when it was drawn); others are not its to judge.
func (j *Judge) SubmittedSealed(ctx context.Context, id, cid string, resultHash common.Hash, s validator.Sealed) error {
	_, err := j.d.Store.Advance(Key(id), Posted, Submitted, "sealed result "+cid, func(sj *store.Job) error {
		var d duty
		if err := json.Unmarshal(sj.Data, &d); err != nil {
			return err
		}
		d.CheckpointCID, d.ResultHash, d.Sealed = cid, hex.EncodeToString(resultHash[:]), &s
		sj.Data, _ = json.Marshal(d)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return nil
	}
	if err != nil {
		return err
	}
	j.spawn(ctx, id)
	return nil
}
