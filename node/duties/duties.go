// Package duties is the node's validator role on the JobMarket contract: it keeps a duty
// for each job that names the node's account as a validator (declined at once when the
// policy's [validator] rules refuse the job's sponsor, token or fee), hands each
// submitted result to the validator, and attests the verdict on chain.
package duties

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/validator"
)

// Duty states, kept in the store under Key(job id).
const (
	Declined  = "declined"
	Posted    = "posted"
	Submitted = "submitted"
	Done      = "done"
)

// Key is the store key of job id's duty.
func Key(id string) string { return keyPrefix + id }

const keyPrefix = "duty-"

// duty is what a validator keeps of a job it judges, from JobPosted on.
type duty struct {
	Posting       jobs.Posting `json:"posting"`
	Threshold     uint32       `json:"threshold"`
	FeeWei        string       `json:"fee_wei,omitempty"`
	CheckpointCID string       `json:"checkpoint_cid,omitempty"`
	ResultHash    string       `json:"result_hash,omitempty"`
	// Sealed is set for a JobMarketV2 result (SubmittedSealed).
	Sealed *validator.Sealed `json:"sealed,omitempty"`
}

func load(st *store.Store, id string) (duty, error) {
	var d duty
	j, err := st.Get(Key(id))
	if err != nil {
		return d, err
	}
	return d, json.Unmarshal(j.Data, &d)
}

// Content is what judging needs of IPFS: the job's manifest.
type Content interface {
	Get(ctx context.Context, cid string, max int64) ([]byte, error)
}

// Validator evaluates a submitted result (validator.Validator).
type Validator interface {
	Validate(ctx context.Context, t validator.Task) (validator.Verdict, error)
}

// Deps are what a Judge works with.
type Deps struct {
	Store   *store.Store
	Content Content
	// Validator evaluates results; nil when the validator role is off, and duties are
	// then not recorded.
	Validator Validator
	// Policy judges duties by the policy's [validator] rules; nil allows all.
	Policy validator.DutyPolicy
	// RetryGap is the pause between attempts at a failed validation (default 30s).
	RetryGap time.Duration
	Log      *slog.Logger
}

// Judge keeps the node's validation duties and runs them.
type Judge struct {
	d  Deps
	wg sync.WaitGroup
}

// New returns the judge of the duties kept in d.Store.
func New(d Deps) *Judge {
	if d.RetryGap <= 0 {
		d.RetryGap = 30 * time.Second
	}
	d.Log = d.Log.With("component", "chain")
	return &Judge{d: d}
}

// Named records a validation duty for the job p that names this node as a validator.
// A duty the policy's [validator] rules decline on what the chain says (sponsor, fee,
// token) is recorded as declined: its result is never fetched nor evaluated. A node whose
// validator role is off records nothing and says so.
func (j *Judge) Named(p jobs.Posting, threshold uint32, fee *big.Int) error {
	if j.d.Validator == nil {
		j.d.Log.Warn("named validator of a job, but the validator role is off ([validator] enabled = false)", "job_id", p.ID)
		return nil
	}
	if fee == nil {
		fee = new(big.Int)
	}
	d := duty{Posting: p, Threshold: threshold, FeeWei: fee.String()}
	state, note := Posted, "named as validator"
	if reason := j.decline(d, ""); reason != "" {
		state, note = Declined, "declined: "+reason
	}
	raw, _ := json.Marshal(d)
	err := j.d.Store.Create(store.Job{ID: Key(p.ID), State: state, Data: raw}, note)
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	switch {
	case err != nil:
	case state == Declined:
		j.d.Log.Warn("validation duty declined: it will not be evaluated", "job_id", p.ID, "sponsor", p.Sponsor, "reason", note)
	default:
		j.d.Log.Info("validator of job", "job_id", p.ID, "sponsor", p.Sponsor)
	}
	return err
}

// decline says why the policy declines duty d with evaluation image img ("" before the
// manifest is read), or "" if it allows it.
func (j *Judge) decline(d duty, img string) string {
	if j.d.Policy == nil {
		return ""
	}
	_, err := validator.PolicyConsent(j.d.Policy)(validator.Task{JobID: d.Posting.ID, Sponsor: d.Posting.Sponsor, Token: d.Posting.Token, FeeWei: d.FeeWei, EvalImage: img})
	if err != nil {
		return err.Error()
	}
	return ""
}

// Submitted starts judging the result v submitted for a job this node has a duty of;
// others are not its to judge.
func (j *Judge) Submitted(ctx context.Context, v *bindings.JobMarketResultSubmitted) error {
	id := v.JobId.String()
	_, err := j.d.Store.Advance(Key(id), Posted, Submitted, "result "+v.CheckpointCID, func(sj *store.Job) error {
		var d duty
		if err := json.Unmarshal(sj.Data, &d); err != nil {
			return err
		}
		d.CheckpointCID, d.ResultHash = v.CheckpointCID, hex.EncodeToString(v.ResultHash[:])
		sj.Data, _ = json.Marshal(d)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return nil // not ours to judge, or already known
	}
	if err != nil {
		return err
	}
	j.spawn(ctx, id)
	return nil
}

// Counts counts the validation duties by state.
func (j *Judge) Counts() map[string]int {
	list, err := j.d.Store.List(func(sj store.Job) bool { return strings.HasPrefix(sj.ID, keyPrefix) })
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, sj := range list {
		out[sj.State]++
	}
	return out
}

// Resume restarts the validations a stopped node left unfinished.
func (j *Judge) Resume(ctx context.Context) error {
	open, err := j.d.Store.List(func(sj store.Job) bool {
		return strings.HasPrefix(sj.ID, keyPrefix) && sj.State == Submitted
	})
	if err != nil {
		return err
	}
	for _, sj := range open {
		j.spawn(ctx, strings.TrimPrefix(sj.ID, keyPrefix))
	}
	return nil
}

// Wait waits for the validations under way to stop.
func (j *Judge) Wait() { j.wg.Wait() }

func (j *Judge) spawn(ctx context.Context, id string) {
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		for attempt := 1; ctx.Err() == nil; attempt++ {
			err := j.validate(ctx, id)
			if err == nil {
				return
			}
			j.d.Log.Warn("validation failed; retrying", "job_id", id, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(j.d.RetryGap):
			}
		}
	}()
}

func (j *Judge) validate(ctx context.Context, id string) error {
	if j.d.Validator == nil {
		return errors.New("this node runs no validator (no container runtime)")
	}
	d, err := load(j.d.Store, id)
	if err != nil {
		return err
	}
	raw, err := j.d.Content.Get(ctx, d.Posting.ManifestCID, job.MaxManifestBytes)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Posting.ManifestCID, err)
	}
	sum := sha256.Sum256(raw)
	task := validator.Task{JobID: id, CheckpointCID: d.CheckpointCID, ResultHash: d.ResultHash, Threshold: d.Threshold,
		Sponsor: d.Posting.Sponsor, Token: d.Posting.Token, FeeWei: d.FeeWei, Sealed: d.Sealed}
	if hex.EncodeToString(sum[:]) == d.Posting.ManifestHash {
		if man, err := job.Decode(strings.NewReader(string(raw))); err == nil {
			task.EvalImage, task.EvalCommand, task.Metric = man.Evaluation.Image, man.Evaluation.Command, man.Evaluation.Metric
			for _, in := range man.Evaluation.Inputs {
				task.EvalInputs = append(task.EvalInputs, validator.EvalInput{CID: in.CID, Path: in.Path})
			}
		}
	}
	verdict, err := j.d.Validator.Validate(ctx, task)
	if err != nil {
		return err
	}
	if verdict.Declined {
		_, err = j.d.Store.Advance(Key(id), Submitted, Declined, verdict.Reason, nil)
		return err
	}
	j.d.Log.Info("attested", "job_id", id, "score", verdict.Score, "pass", verdict.Pass, "reason", verdict.Reason)
	_, err = j.d.Store.Advance(Key(id), Submitted, Done, fmt.Sprintf("score %d", verdict.Score), nil)
	return err
}

// Market is what attesting needs of the chain side.
type Market interface {
	Account() common.Address
	Job(ctx context.Context, id *big.Int) (bindings.JobMarketJob, error)
	Attest(ctx context.Context, id *big.Int, validators []common.Address, resultHash common.Hash, score uint32) (*types.Receipt, error)
}

// Attester is the validator's validator.Chain: it attests a verdict on a duty's result,
// once.
type Attester struct {
	m  Market
	st *store.Store
}

var _ validator.Chain = Attester{}

// NewAttester returns the attester of the duties kept in st.
func NewAttester(m Market, st *store.Store) Attester { return Attester{m: m, st: st} }

// Attest implements validator.Chain.
func (a Attester) Attest(ctx context.Context, id string, score uint32) (string, error) {
	n, ok := new(big.Int).SetString(id, 10)
	if !ok {
		return "", fmt.Errorf("%w: job %q is not a chain job id", jobs.ErrPermanent, id)
	}
	d, err := load(a.st, id)
	if err != nil {
		return "", err
	}
	var validators []common.Address
	self, idx := a.m.Account(), -1
	for i, v := range d.Posting.Validators {
		validators = append(validators, common.HexToAddress(v))
		if common.HexToAddress(v) == self {
			idx = i
		}
	}
	view, err := a.m.Job(ctx, n)
	if err != nil {
		return "", err
	}
	if idx >= 0 && view.Attested&(1<<idx) != 0 {
		return "already attested", nil
	}
	if market.JobState(view.State) != market.StateSubmitted {
		return "job no longer awaits attestations", nil
	}
	r, err := a.m.Attest(ctx, n, validators, common.HexToHash(d.ResultHash), score)
	if err != nil {
		return "", err
	}
	return r.TxHash.Hex(), nil
}
