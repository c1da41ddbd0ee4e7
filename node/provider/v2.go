package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/job/seal"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/validator"
)

// MarketV2 is what the provider role needs of JobMarketV2 (market.V2).
type MarketV2 interface {
	Account() common.Address
	Now(ctx context.Context) (time.Time, error)
	Job(ctx context.Context, id *big.Int) (bindings.JobMarketV2Job, error)
	Accepted(ctx context.Context, id *big.Int) (*bindings.JobMarketV2JobAccepted, error)
	AcceptJob(ctx context.Context, id *big.Int, useAllowlist bool, allowlist []common.Address, ethBond *big.Int) (*types.Receipt, error)
	SubmitResult(ctx context.Context, id *big.Int, cid string, resultHash, keyHash common.Hash) (*types.Receipt, error)
	GiveBack(ctx context.Context, id *big.Int, logHash common.Hash) (*types.Receipt, error)
	Finalize(ctx context.Context, id *big.Int, drawn []common.Address) (*types.Receipt, error)
	ReleaseKey(ctx context.Context, id *big.Int, key common.Hash) (*types.Receipt, error)
	Expire(ctx context.Context, id *big.Int) (*types.Receipt, error)
}

// Keys are the provider's sealed-checkpoint keys (sealkey.KeyStore).
type Keys interface {
	SealKey(ctx context.Context, jobID *big.Int) (seal.Key, seal.Binding, error)
}

// Logs opens a job's container log (runtime.Runtime's Logs, not following).
type Logs func(ctx context.Context, jobID string) (io.ReadCloser, error)

// ChainV2 is the job machine's jobs.Chain over JobMarketV2: the output is sealed
// (jobs.Sealer), the submit carries keccak256(K), a failed job is given back at once
// with its log's hash, and a passed job is paid by releasing its key.
type ChainV2 struct {
	m    MarketV2
	keys Keys
	logs Logs
	log  *slog.Logger
}

var _ jobs.Chain = (*ChainV2)(nil)

// NewChainV2 returns the machine's chain adapter over m, with the keys the machine's
// Sealer keeps and the runtime's logs (nil: a give-back posts the hash of the reason).
func NewChainV2(m MarketV2, keys Keys, logs Logs, log *slog.Logger) *ChainV2 {
	return &ChainV2{m: m, keys: keys, logs: logs, log: log.With("component", "chain_v2")}
}

// V2Key is the node's name of JobMarketV2 job id ("v2-7"), apart from the JobMarket's
// job of the same number.
func V2Key(id *big.Int) string { return validator.V2Prefix + id.String() }

func (c *ChainV2) view(ctx context.Context, id string) (*big.Int, bindings.JobMarketV2Job, error) {
	n, err := JobID(strings.TrimPrefix(id, validator.V2Prefix))
	if err != nil {
		return nil, bindings.JobMarketV2Job{}, err
	}
	v, err := c.m.Job(ctx, n)
	return n, v, err
}

// Accept implements jobs.Chain: it accepts with the job's ETH bond; the contract draws
// the validators.
func (c *ChainV2) Accept(ctx context.Context, id string) (string, error) {
	n, v, err := c.view(ctx, id)
	if err != nil {
		return "", err
	}
	switch market.JobState(v.State) {
	case market.V2Open:
	case market.V2None:
		return "", fmt.Errorf("%w: job %s does not exist on chain", jobs.ErrPermanent, id)
	default:
		if v.Provider == c.m.Account() {
			return "already accepted", nil
		}
		return "", fmt.Errorf("%w: job %s is %s on chain", jobs.ErrPermanent, id, market.V2StateName(v.State))
	}
	if v.Token != (common.Address{}) {
		return "", fmt.Errorf("%w: job %s pays in token %s: this node takes ETH jobs on JobMarketV2", jobs.ErrPermanent, id, v.Token.Hex())
	}
	r, err := c.m.AcceptJob(ctx, n, false, nil, v.Bond)
	if err != nil {
		return "", err
	}
	return r.TxHash.Hex(), nil
}

// Submit implements jobs.Chain: hash is the sealed checkpoint's sha256; keccak256(K)
// comes from the key the machine sealed it with.
func (c *ChainV2) Submit(ctx context.Context, id, cid, hash string) (string, error) {
	n, v, err := c.view(ctx, id)
	if err != nil {
		return "", err
	}
	if market.JobState(v.State) != market.V2Accepted {
		if v.Provider == c.m.Account() && v.KeyHash != [32]byte{} {
			return "already submitted", nil
		}
		return "", fmt.Errorf("%w: job %s is %s on chain", jobs.ErrPermanent, id, market.V2StateName(v.State))
	}
	k, _, err := c.keys.SealKey(ctx, n)
	if err != nil {
		return "", fmt.Errorf("%w: job %s: the output's key: %w", jobs.ErrPermanent, id, err)
	}
	r, err := c.m.SubmitResult(ctx, n, cid, common.HexToHash(hash), k.Commitment())
	if err != nil {
		return "", err
	}
	return r.TxHash.Hex(), nil
}

// Abandon implements jobs.Chain: an accepted job is handed back at once with the hash of
// the trainer's log (the contract returns the bond within the first tenth of the run
// window). A job past its deadline is expired instead.
func (c *ChainV2) Abandon(ctx context.Context, id, reason string) (string, error) {
	n, v, err := c.view(ctx, id)
	if err != nil {
		return "", err
	}
	switch market.JobState(v.State) {
	case market.V2Accepted:
		if v.Provider != c.m.Account() {
			return "", fmt.Errorf("%w: job %s is accepted by %s, not this node", jobs.ErrPermanent, id, v.Provider.Hex())
		}
	case market.V2Returned:
		return "given back on chain: the sponsor is refunded", nil
	case market.V2Expired:
		return "expired on chain: the sponsor is refunded", nil
	default:
		return fmt.Sprintf("nothing to give back: the job is %s on chain", market.V2StateName(v.State)), nil
	}
	now, err := c.m.Now(ctx)
	if err != nil {
		return "", err
	}
	if now.Unix() > v.Deadline.Int64() {
		r, err := c.m.Expire(ctx, n)
		if err != nil {
			return "", err
		}
		return "expired on chain past its deadline, tx " + r.TxHash.Hex() + ": the sponsor is refunded", nil
	}
	logHash := c.logHash(ctx, id, reason)
	r, err := c.m.GiveBack(ctx, n, logHash)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("given back on chain with log hash %s, tx %s: the sponsor is refunded", logHash.Hex(), r.TxHash.Hex()), nil
}

// logHash is the sha256 of the job's log, or of the reason when there is no log.
func (c *ChainV2) logHash(ctx context.Context, id, reason string) common.Hash {
	h := sha256.New()
	if c.logs != nil {
		if rc, err := c.logs(ctx, id); err == nil {
			_, err = io.Copy(h, io.LimitReader(rc, 1<<30))
			rc.Close()
			if err == nil {
				return common.BytesToHash(h.Sum(nil))
			}
			h.Reset()
		}
	}
	io.WriteString(h, reason)
	return common.BytesToHash(h.Sum(nil))
}

// Outcome implements jobs.Chain. It also does the provider's duties on the way: past the
// reveal deadline it finalizes the job (a validator that did not reveal is slashed to the
// provider), and a passed job is paid by releasing its key.
func (c *ChainV2) Outcome(ctx context.Context, id string) (jobs.Outcome, error) {
	n, v, err := c.view(ctx, id)
	if err != nil {
		return jobs.OutcomePending, err
	}
	self := c.m.Account()
	if v.Provider != self && v.Provider != (common.Address{}) {
		return jobs.OutcomeTaken, nil
	}
	switch market.JobState(v.State) {
	case market.V2Submitted:
		now, err := c.m.Now(ctx)
		if err != nil {
			return jobs.OutcomePending, err
		}
		if now.Unix() <= v.Deadline.Int64()+v.RevealWindow.Int64() {
			return jobs.OutcomePending, nil
		}
		acc, err := c.m.Accepted(ctx, n)
		if err != nil {
			return jobs.OutcomePending, err
		}
		if _, err := c.m.Finalize(ctx, n, acc.Validators); err != nil {
			return jobs.OutcomePending, fmt.Errorf("finalize: %w", err)
		}
		return jobs.OutcomePending, nil
	case market.V2Passed:
		k, _, err := c.keys.SealKey(ctx, n)
		if err != nil {
			return jobs.OutcomePending, fmt.Errorf("release the key: %w", err)
		}
		r, err := c.m.ReleaseKey(ctx, n, common.Hash(k))
		if err != nil {
			return jobs.OutcomePending, fmt.Errorf("release the key: %w", err)
		}
		c.log.Info("checkpoint key released on chain: paid", "job_id", id, "tx", r.TxHash.Hex())
		return jobs.OutcomeCompleted, nil
	case market.V2Completed:
		return jobs.OutcomeCompleted, nil
	case market.V2Rejected:
		return jobs.OutcomeRejected, nil
	case market.V2NoQuorum, market.V2Expired, market.V2Returned, market.V2Cancelled:
		return jobs.OutcomeExpired, nil
	}
	return jobs.OutcomePending, nil
}

// Draw tells the key server (node/sealkey) whether an account is a drawn validator of a
// job: the drawn list is in the job's JobAccepted event, which only the contract emits.
type Draw struct{ M MarketV2 }

// IsDrawn implements sealkey.Draw.
func (d Draw) IsDrawn(ctx context.Context, jobID *big.Int, validator common.Address) (bool, error) {
	acc, err := d.M.Accepted(ctx, jobID)
	if err != nil {
		return false, err
	}
	for _, a := range acc.Validators {
		if a == validator {
			return true, nil
		}
	}
	return false, nil
}

// Router is the machine's jobs.Chain on a node in both markets: a JobMarketV2 job
// (Posting.Sealed) goes to V2, any other to V1.
type Router struct {
	V1, V2 jobs.Chain
	Jobs   Jobs
}

var _ jobs.Chain = Router{}

func (r Router) pick(id string) (jobs.Chain, error) {
	j, err := r.Jobs.Get(id)
	if err != nil {
		return nil, err
	}
	if j.Posting.Sealed {
		if r.V2 == nil {
			return nil, fmt.Errorf("%w: job %s is on JobMarketV2, which this node does not reach", jobs.ErrPermanent, id)
		}
		return r.V2, nil
	}
	return r.V1, nil
}

// Accept implements jobs.Chain.
func (r Router) Accept(ctx context.Context, id string) (string, error) {
	c, err := r.pick(id)
	if err != nil {
		return "", err
	}
	return c.Accept(ctx, id)
}

// Submit implements jobs.Chain.
func (r Router) Submit(ctx context.Context, id, cid, hash string) (string, error) {
	c, err := r.pick(id)
	if err != nil {
		return "", err
	}
	return c.Submit(ctx, id, cid, hash)
}

// Abandon implements jobs.Chain.
func (r Router) Abandon(ctx context.Context, id, reason string) (string, error) {
	c, err := r.pick(id)
	if err != nil {
		return "", err
	}
	return c.Abandon(ctx, id, reason)
}

// Outcome implements jobs.Chain.
func (r Router) Outcome(ctx context.Context, id string) (jobs.Outcome, error) {
	c, err := r.pick(id)
	if err != nil {
		return jobs.OutcomePending, err
	}
	return c.Outcome(ctx, id)
}

// PostingV2 is a JobMarketV2 JobPosted event as the job machine takes it.
func PostingV2(v *bindings.JobMarketV2JobPosted) jobs.Posting {
	p := v.Params
	return jobs.Posting{
		ID:           V2Key(v.JobId),
		Sponsor:      v.Sponsor.Hex(),
		ManifestCID:  p.ManifestCID,
		ManifestHash: hex.EncodeToString(p.ManifestHash[:]),
		RewardWei:    p.Reward.String(),
		Deadline:     time.Unix(p.AcceptBy.Int64(), 0).UTC(),
		Source:       "chain",
		Sealed:       true,
		BondWei:      p.Bond.String(),
		Token:        v.Token.Hex(),
		Threshold:    p.Threshold,
		Quorum:       int(p.Quorum),

		ValidatorCount: int(p.ValidatorCount),
		LowerIsBetter:  p.LowerIsBetter,

		RunWindowSeconds:    p.RunWindow,
		AttestWindowSeconds: uint32(p.CommitWindow.Uint64() + p.RevealWindow.Uint64()),
	}
}
