// Package provider is the node's provider role on the JobMarket contract: the job
// machine's chain adapter (accept, submit, abandon, read the outcome, each idempotent
// against the chain's record) and the provider's registration with its benchmark report.
package provider

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
)

// Market is what the provider role needs of the chain side.
type Market interface {
	// Account is the node's account; the zero address when watch-only.
	Account() common.Address
	Job(ctx context.Context, id *big.Int) (bindings.JobMarketJob, error)
	AcceptJob(ctx context.Context, id *big.Int, validators []common.Address, ethBond *big.Int) (*types.Receipt, error)
	AcceptJobWithTokenBond(ctx context.Context, id *big.Int, validators []common.Address, token common.Address, amount *big.Int) (*types.Receipt, error)
	SubmitResult(ctx context.Context, id *big.Int, checkpointCID string, resultHash common.Hash) (*types.Receipt, error)
	PastDeadline(ctx context.Context, v bindings.JobMarketJob) (past bool, wait time.Duration, err error)
	Expire(ctx context.Context, id *big.Int) (*types.Receipt, error)
	Provider(ctx context.Context, account common.Address) (registered bool, reportHash common.Hash, err error)
	RegisterProvider(ctx context.Context, peerID, reportCID string, reportHash common.Hash) (*types.Receipt, error)
}

// Jobs reads the jobs the machine keeps (jobs.Records): accepting a job sends the terms
// it was posted with.
type Jobs interface {
	Get(id string) (jobs.Job, error)
}

// Chain is the job machine's jobs.Chain over the contract.
type Chain struct {
	m    Market
	jobs Jobs
	log  *slog.Logger
}

var _ jobs.Chain = (*Chain)(nil)

// NewChain returns the machine's chain adapter over m, reading postings from j.
func NewChain(m Market, j Jobs, log *slog.Logger) *Chain {
	return &Chain{m: m, jobs: j, log: log.With("component", "chain")}
}

// Posting is a JobPosted event as the job machine takes it.
func Posting(v *bindings.JobMarketJobPosted) jobs.Posting {
	p := jobs.Posting{
		ID:           v.JobId.String(),
		Sponsor:      v.Sponsor.Hex(),
		ManifestCID:  v.ManifestCID,
		ManifestHash: hex.EncodeToString(v.ManifestHash[:]),
		RewardWei:    v.Reward.String(),
		Deadline:     time.Unix(v.AcceptBy.Int64(), 0).UTC(),
		Source:       "chain",
		BondWei:      v.Bond.String(),
		Token:        v.Token.Hex(),

		Threshold:           v.Threshold,
		Quorum:              int(v.Quorum),
		RunWindowSeconds:    v.RunWindow,
		AttestWindowSeconds: v.AttestWindow,
	}
	for _, a := range v.Validators {
		p.Validators = append(p.Validators, a.Hex())
	}
	return p
}

// Names tells whether list holds a, which is not the zero address (a watch-only node's).
func Names(list []common.Address, a common.Address) bool {
	if a == (common.Address{}) {
		return false
	}
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// JobID parses a machine's job id as the contract's.
func JobID(id string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(id, 10)
	if !ok {
		return nil, fmt.Errorf("%w: job %q is not a chain job id", jobs.ErrPermanent, id)
	}
	return n, nil
}

// reached reads job id from the chain and tells whether this node has already taken it
// to state st or beyond, so a step repeated after a crash is not sent twice.
func (c *Chain) reached(ctx context.Context, id string, st market.JobState) (*big.Int, bool, error) {
	n, err := JobID(id)
	if err != nil {
		return nil, false, err
	}
	view, err := c.m.Job(ctx, n)
	if err != nil {
		return nil, false, err
	}
	return n, market.JobState(view.State) >= st && view.Provider == c.m.Account(), nil
}

// Accept implements jobs.Chain: a job this node already accepted is not accepted again.
func (c *Chain) Accept(ctx context.Context, id string) (string, error) {
	n, done, err := c.reached(ctx, id, market.StateAccepted)
	if err != nil {
		return "", err
	}
	if done {
		return "already accepted", nil
	}
	j, err := c.jobs.Get(id)
	if err != nil {
		return "", err
	}
	var validators []common.Address
	for _, a := range j.Posting.Validators {
		validators = append(validators, common.HexToAddress(a))
	}
	bond, ok := new(big.Int).SetString(j.Posting.BondWei, 10)
	if !ok {
		bond = new(big.Int)
	}
	var r *types.Receipt
	if token := common.HexToAddress(j.Posting.Token); token != (common.Address{}) && bond.Sign() > 0 {
		r, err = c.m.AcceptJobWithTokenBond(ctx, n, validators, token, bond)
	} else {
		r, err = c.m.AcceptJob(ctx, n, validators, bond)
	}
	if err != nil {
		return "", err
	}
	return r.TxHash.Hex(), nil
}

// Submit implements jobs.Chain.
func (c *Chain) Submit(ctx context.Context, id, cid, hash string) (string, error) {
	n, done, err := c.reached(ctx, id, market.StateSubmitted)
	if err != nil {
		return "", err
	}
	if done {
		return "already submitted", nil
	}
	r, err := c.m.SubmitResult(ctx, n, cid, common.HexToHash(hash))
	if err != nil {
		return "", err
	}
	return r.TxHash.Hex(), nil
}

// Abandon implements jobs.Chain. The contract lets no provider hand a job back before
// its deadline; once the deadline passes anyone may expire the job, and the sponsor is
// refunded. The node waits for that moment and expires the job itself, so the refund
// does not wait for someone to notice.
func (c *Chain) Abandon(ctx context.Context, id, reason string) (string, error) {
	n, err := JobID(id)
	if err != nil {
		return "", err
	}
	for {
		view, err := c.m.Job(ctx, n)
		if err != nil {
			return "", err
		}
		switch market.JobState(view.State) {
		case market.StateExpired:
			return "expired on chain: the sponsor is refunded", nil
		case market.StateAccepted:
			if view.Provider != c.m.Account() {
				return "", fmt.Errorf("%w: job %s is accepted by %s, not this node", jobs.ErrPermanent, id, view.Provider.Hex())
			}
		default:
			return fmt.Sprintf("nothing to give back: the job is %s on chain", market.JobState(view.State)), nil
		}
		past, wait, err := c.m.PastDeadline(ctx, view)
		if err != nil {
			return "", err
		}
		if !past {
			c.log.Info("job failed; expiring it on chain at its deadline so the sponsor is refunded",
				"job_id", id, "in", wait.Round(time.Second), "reason", reason)
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(min(wait+time.Second, time.Minute)):
			}
			continue
		}
		r, err := c.m.Expire(ctx, n)
		if err != nil {
			return "", err // the loop in the machine retries; a job expired meanwhile is seen above
		}
		return "expired on chain at its deadline, tx " + r.TxHash.Hex() + ": the sponsor is refunded", nil
	}
}

// Outcome implements jobs.Chain.
func (c *Chain) Outcome(ctx context.Context, id string) (jobs.Outcome, error) {
	n, err := JobID(id)
	if err != nil {
		return "", err
	}
	view, err := c.m.Job(ctx, n)
	if err != nil {
		return jobs.OutcomePending, err
	}
	self := c.m.Account()
	switch market.JobState(view.State) {
	case market.StateAccepted, market.StateSubmitted:
		if view.Provider != self {
			return jobs.OutcomeTaken, nil
		}
		// Validators that never decide do not hold the provider's bond forever: past the
		// attest deadline the provider expires the job (its bond comes back, the sponsor
		// gets the reward).
		if market.JobState(view.State) == market.StateSubmitted {
			if past, _, err := c.m.PastDeadline(ctx, view); err == nil && past {
				if r, err := c.m.Expire(ctx, n); err == nil {
					c.log.Info("validators missed the attest deadline; expired the job", "job_id", id, "tx", r.TxHash.Hex())
					return jobs.OutcomeExpired, nil
				}
			}
		}
	case market.StateCompleted:
		if view.Provider != self {
			return jobs.OutcomeTaken, nil
		}
		return jobs.OutcomeCompleted, nil
	case market.StateRejected:
		return jobs.OutcomeRejected, nil
	case market.StateCancelled, market.StateExpired:
		return jobs.OutcomeExpired, nil
	}
	return jobs.OutcomePending, nil
}
