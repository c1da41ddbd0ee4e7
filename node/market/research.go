package market

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts"
	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/api"
)

// The researcher's side: post a job with its reward escrowed, and read back the result
// a provider submitted.

// PostJob posts a job: the reward and every validator's fee go into escrow with the call
// (in ETH), or are pulled by the contract after an approval (in an ERC-20 token). It returns the job's ID from the JobPosted event.
func (m *Market) PostJob(ctx context.Context, p bindings.JobMarketJobParams) (*big.Int, *types.Receipt, error) {
	value := new(big.Int).Mul(p.ValidatorFee, big.NewInt(int64(len(p.Validators))))
	value.Add(value, p.Reward)
	if p.Token != (common.Address{}) {
		// In a token, the escrow is pulled with transferFrom: approve it first.
		if err := m.approve(ctx, p.Token, value); err != nil {
			return nil, nil, fmt.Errorf("post job: approve the escrow: %w", err)
		}
		value = nil
	}
	r, err := m.send(ctx, "post job", value, m.abi.PackPostJob(p))
	if err != nil {
		return nil, nil, err
	}
	for _, l := range r.Logs {
		if ev, err := m.abi.UnpackJobPostedEvent(l); err == nil {
			return ev.JobId, r, nil
		}
	}
	return nil, r, fmt.Errorf("post job: tx %s has no JobPosted event", r.TxHash.Hex())
}

// ErrNotPosted means no JobPosted event exists for the job.
var ErrNotPosted = errors.New("no such job posted on chain")

// Posted returns job id's JobPosted event: what the sponsor posted, manifest included.
func (m *Market) Posted(ctx context.Context, id *big.Int) (*bindings.JobMarketJobPosted, error) {
	logs, err := m.client.FilterLogs(ctx, ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(m.cfg.StartBlock),
		Addresses: []common.Address{m.contract},
		Topics:    [][]common.Hash{nil, {common.BigToHash(id)}},
	})
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	for i := range logs {
		if ev, err := m.abi.UnpackJobPostedEvent(&logs[i]); err == nil && ev.JobId.Cmp(id) == 0 {
			return ev, nil
		}
	}
	return nil, fmt.Errorf("job %s: %w", id, ErrNotPosted)
}

// ErrNoResult means no result was submitted for the job yet.
var ErrNoResult = errors.New("no result submitted for this job yet")

// Result returns the checkpoint CID and result hash submitted for job id, from its
// ResultSubmitted event.
func (m *Market) Result(ctx context.Context, id *big.Int) (string, common.Hash, error) {
	logs, err := m.client.FilterLogs(ctx, ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(m.cfg.StartBlock),
		Addresses: []common.Address{m.contract},
	})
	if err != nil {
		return "", common.Hash{}, fmt.Errorf("job %s: %w", id, err)
	}
	for i := range logs {
		ev, err := m.abi.UnpackResultSubmittedEvent(&logs[i])
		if err == nil && ev.JobId.Cmp(id) == 0 {
			return ev.CheckpointCID, ev.ResultHash, nil
		}
	}
	return "", common.Hash{}, fmt.Errorf("job %s: %w", id, ErrNoResult)
}

// Post posts the job req describes, paid from the node's account, and waits for its
// confirmation: what POST /v1/market/jobs does.
func (m *Market) Post(ctx context.Context, req api.PostJobRequest) (api.PostJobResult, error) {
	if req.ValidatorCount > 0 {
		return m.postV2(ctx, req)
	}
	p, err := jobParams(req)
	if err != nil {
		return api.PostJobResult{}, api.WithClass(api.ErrInvalidArgument, err)
	}
	id, rec, err := m.PostJob(ctx, p)
	if err != nil {
		return api.PostJobResult{}, txError(err)
	}
	return api.PostJobResult{JobID: id.String(), TxHash: rec.TxHash.Hex()}, nil
}

// JobRecord reads job id's on-chain record: GET /v1/market/jobs/{id}.
func (m *Market) JobRecord(ctx context.Context, id string) (api.ChainJob, error) {
	n, err := chainJobID(id)
	if err != nil {
		return api.ChainJob{}, err
	}
	j, err := m.ChainJob(ctx, n)
	switch {
	case errors.Is(err, ErrNotPosted):
		return api.ChainJob{}, api.WithClass(api.ErrNotFound, err)
	case err != nil:
		return api.ChainJob{}, api.WithClass(api.ErrUnavailable, err)
	}
	return j, nil
}

// Cancel cancels job id, which the node posted: POST /v1/market/jobs/{id}/cancel.
func (m *Market) Cancel(ctx context.Context, id string) (api.PostJobResult, error) {
	n, err := chainJobID(id)
	if err != nil {
		return api.PostJobResult{}, err
	}
	rec, err := m.CancelJob(ctx, n)
	if err != nil {
		return api.PostJobResult{}, txError(err, "BadState", "NotSponsor")
	}
	return api.PostJobResult{JobID: n.String(), TxHash: rec.TxHash.Hex()}, nil
}

// JobResult reads what a provider submitted for job id: GET /v1/market/jobs/{id}/result.
func (m *Market) JobResult(ctx context.Context, id string) (api.JobResult, error) {
	n, err := chainJobID(id)
	if err != nil {
		return api.JobResult{}, err
	}
	cid, hash, err := m.Result(ctx, n)
	switch {
	case errors.Is(err, ErrNoResult):
		return api.JobResult{}, api.WithClass(api.ErrNotFound, err)
	case err != nil:
		return api.JobResult{}, api.WithClass(api.ErrUnavailable, err)
	}
	return api.JobResult{JobID: n.String(), CheckpointCID: cid, ResultHash: hash.Hex()}, nil
}

func jobParams(req api.PostJobRequest) (bindings.JobMarketJobParams, error) {
	var p bindings.JobMarketJobParams
	num := func(name, s string) (*big.Int, error) {
		if s == "" {
			return new(big.Int), nil
		}
		v, ok := new(big.Int).SetString(s, 10)
		if !ok || v.Sign() < 0 {
			return nil, fmt.Errorf("%s %q: want a non-negative integer in wei", name, s)
		}
		return v, nil
	}
	var err error
	if p.Reward, err = num("reward_wei", req.RewardWei); err != nil {
		return p, err
	}
	if p.ValidatorFee, err = num("validator_fee_wei", req.ValidatorFeeWei); err != nil {
		return p, err
	}
	if p.Bond, err = num("bond_wei", req.BondWei); err != nil {
		return p, err
	}
	hash := common.FromHex(req.ManifestHash)
	if len(hash) != 32 {
		return p, fmt.Errorf("manifest_hash %q: want 32 bytes of hex", req.ManifestHash)
	}
	copy(p.ManifestHash[:], hash)
	if req.ManifestCID == "" {
		return p, errors.New("manifest_cid: must not be empty")
	}
	for _, v := range req.Validators {
		if !common.IsHexAddress(v) {
			return p, fmt.Errorf("validator %q: not an address", v)
		}
		p.Validators = append(p.Validators, common.HexToAddress(v))
	}
	if req.Quorum < 1 || int(req.Quorum) > len(p.Validators) {
		return p, fmt.Errorf("quorum %d: want 1..%d (the number of validators)", req.Quorum, len(p.Validators))
	}
	if req.Token != "" {
		if !common.IsHexAddress(req.Token) {
			return p, fmt.Errorf("token %q: not an address", req.Token)
		}
		p.Token = common.HexToAddress(req.Token)
	}
	p.ManifestCID, p.Quorum, p.Threshold = req.ManifestCID, req.Quorum, req.Threshold
	p.AcceptBy = big.NewInt(time.Now().Add(time.Duration(req.AcceptWithinSeconds) * time.Second).Unix())
	p.RunWindow, p.AttestWindow = req.RunWindowSeconds, req.AttestWindowSeconds
	return p, nil
}

// ChainJob describes job id's on-chain record, with its manifest and who the contract
// credited once it is over.
func (m *Market) ChainJob(ctx context.Context, id *big.Int) (api.ChainJob, error) {
	v, err := m.Job(ctx, id)
	if err != nil {
		return api.ChainJob{}, err
	}
	if v.Sponsor == (common.Address{}) {
		return api.ChainJob{}, fmt.Errorf("job %s: %w", id, ErrNotPosted)
	}
	j := chainJob(id, v)
	if ev, err := m.Posted(ctx, id); err == nil {
		j.ManifestCID = ev.ManifestCID
	}
	return j, nil
}

// chainJob describes an on-chain job record, with who the contract credited once it is
// over (see the money rules in JobMarket.sol).
func chainJob(id *big.Int, v bindings.JobMarketJob) api.ChainJob {
	st := JobState(v.State)
	j := api.ChainJob{
		JobID: id.String(), State: st.String(), Sponsor: v.Sponsor.Hex(),
		Reward: v.Reward.String(), Fee: v.ValidatorFee.String(), Bond: v.Bond.String(),
		Passes: int(v.Passes), Fails: int(v.Fails),
	}
	if v.Provider != (common.Address{}) {
		j.Provider = v.Provider.Hex()
	}
	if d, ok := Deadline(v); ok {
		j.Deadline = d.UTC()
	}
	switch st {
	case StateCompleted:
		j.Settlement = "paid: the provider is credited the reward and its bond back; unearned validator fees go back to the sponsor"
	case StateRejected:
		j.Settlement = "refunded: the validators scored the result below the threshold; the sponsor is credited the reward, the provider's bond and unearned fees"
	case StateExpired:
		j.Settlement = "refunded: a deadline passed; the sponsor is credited the reward and unearned fees (and the bond, if the provider missed its run deadline)"
	case StateCancelled:
		j.Settlement = "refunded: the sponsor cancelled the job before anyone accepted it"
	}
	return j
}

// pathJobID reads the {id} of a route as a chain job id, answering 400 when it is not one.
// chainJobID reads a chain job id (decimal).
func chainJobID(s string) (*big.Int, error) {
	id, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, api.WithClass(api.ErrInvalidArgument, fmt.Errorf("job %q: not a chain job id", s))
	}
	return id, nil
}

// txError classes a failed transaction: a conflict when the node has no unlocked key or
// the contract refused it with one of the conflicts named, unavailable otherwise (the
// chain's endpoint failed).
func txError(err error, conflicts ...string) error {
	if errors.Is(err, ErrWatchOnly) {
		return api.WithClass(api.ErrConflict, err)
	}
	for _, name := range conflicts {
		if contracts.IsRevert(err, name) {
			return api.WithClass(api.ErrConflict, err)
		}
	}
	return api.WithClass(api.ErrUnavailable, err)
}
