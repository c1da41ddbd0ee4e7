package validator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/gpunode/gpunode/job/seal"
	"github.com/gpunode/gpunode/node/store"
)

// V2Prefix starts the node's name of a JobMarketV2 job ("v2-7"): the two contracts
// number their jobs each from 1.
const V2Prefix = "v2-"

// SealedFile is the name of the sealed checkpoint in the directory a provider publishes.
const SealedFile = seal.FileName

// Sealed is what JobMarket v2 says of a sealed result: the validator fetches the
// ciphertext, checks its hash, asks the provider for the key, checks it against KeyHash
// and opens the checkpoint, which must be bound to this job.
type Sealed struct {
	// Binding is the chain, contract, job and provider the checkpoint must be sealed for.
	Binding seal.Binding `json:"-"`
	// ChainID, Contract, JobID and Provider spell Binding for the store.
	ChainID  string `json:"chain_id"`
	Contract string `json:"contract"`
	Provider string `json:"provider"`
	// ProviderPeer is the provider's libp2p peer ID, where the key is asked for.
	ProviderPeer string `json:"provider_peer"`
	// KeyHash is keccak256(K) as committed on chain, hex.
	KeyHash string `json:"key_hash"`
	// KeyBy is when the validator stops asking for the key and commits a failing score:
	// a provider that withholds the key from a drawn validator fails its job.
	KeyBy time.Time `json:"key_by"`
	// LowerIsBetter is the metric's direction (manifest and chain).
	LowerIsBetter bool `json:"lower_is_better,omitempty"`
}

// KeySource gets a sealed checkpoint's key from its provider (node/sealkey), checked
// against the commitment on chain.
type KeySource interface {
	Key(ctx context.Context, providerPeer string, b seal.Binding, keyHash common.Hash) (seal.Key, error)
}

// CommitReveal is what the validator needs of JobMarket v2. Both calls must be
// idempotent: repeating a commit or a reveal this validator already made succeeds.
// Reveal waits until the contract takes reveals (the commit deadline passed, or every
// drawn validator committed).
type CommitReveal interface {
	Commit(ctx context.Context, jobID string, commitment common.Hash) (tx string, err error)
	Reveal(ctx context.Context, jobID string, score uint32, salt common.Hash) (tx string, err error)
}

// SetSealed lets the validator judge sealed results (tasks with Sealed set), getting
// keys from keys and scoring through commit-reveal on cr as account self.
func (v *Validator) SetSealed(keys KeySource, cr CommitReveal, self common.Address) {
	v.keys, v.cr, v.self = keys, cr, self
}

// Commitment is keccak256(abi.encode(uint32 score, bytes32 salt, address validator,
// uint256 jobId)), what JobMarket v2's commit takes.
func Commitment(score uint32, salt common.Hash, validator common.Address, jobID *big.Int) common.Hash {
	b, err := commitArgs.Pack(score, salt, validator, jobID)
	if err != nil {
		panic(err) // static types: cannot fail
	}
	return crypto.Keccak256Hash(b)
}

var commitArgs = func() abi.Arguments {
	ty := func(s string) abi.Type {
		t, err := abi.NewType(s, "", nil)
		if err != nil {
			panic(err)
		}
		return t
	}
	return abi.Arguments{{Type: ty("uint32")}, {Type: ty("bytes32")}, {Type: ty("address")}, {Type: ty("uint256")}}
}()

// Store states of a sealed task, after stateEvaluating.
const (
	stateCommitting = "committing"
	stateRevealing  = "revealing"
	stateRevealed   = "revealed"
)

// sealedRecord is what the store keeps of a sealed task. The salt stays here, in the
// node's state, until the reveal: it never appears in a Verdict, a log or the API.
type sealedRecord struct {
	Verdict Verdict     `json:"verdict"`
	Salt    common.Hash `json:"salt"`
	Commit  string      `json:"commit_tx,omitempty"`
}

// validateSealed is Validate for a sealed task: evaluate once, commit, then reveal,
// resuming at the step a previous run reached. A restart between commit and reveal
// reveals with the salt kept in the store.
func (v *Validator) validateSealed(ctx context.Context, t Task) (Verdict, error) {
	if v.keys == nil || v.cr == nil {
		return Verdict{}, fmt.Errorf("job %s: a sealed result, and this validator judges none (no key source or commit-reveal chain)", t.JobID)
	}
	jobID, ok := new(big.Int).SetString(strings.TrimPrefix(t.JobID, V2Prefix), 10)
	if !ok {
		return Verdict{}, fmt.Errorf("job %q: not a decimal job id", t.JobID)
	}
	id := key(t.JobID)
	err := v.store.Create(store.Job{ID: id, State: stateEvaluating}, "sealed result submitted: "+t.CheckpointCID)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return Verdict{}, err
	}
	j, err := v.store.Get(id)
	if err != nil {
		return Verdict{}, err
	}
	var rec sealedRecord
	if j.State == stateEvaluating {
		verdict, err := v.judge(ctx, t)
		if err != nil {
			return Verdict{}, err
		}
		if verdict.Declined {
			v.log.Warn("validation declined: not evaluated", "job_id", t.JobID, "sponsor", t.Sponsor, "image", t.EvalImage, "reason", verdict.Reason)
			_, err := v.store.Advance(id, stateEvaluating, stateDeclined, verdict.Reason, func(sj *store.Job) error {
				sj.Data = mustJSON(sealedRecord{Verdict: verdict})
				return nil
			})
			return verdict, err
		}
		rec.Verdict = verdict
		if _, err := io.ReadFull(rand.Reader, rec.Salt[:]); err != nil {
			return Verdict{}, fmt.Errorf("salt: %w", err)
		}
		v.log.Info("evaluated", "job_id", t.JobID, "metric", t.Metric, "value", verdict.Value, "score", verdict.Score, "pass", verdict.Pass, "reason", verdict.Reason)
		if j, err = v.store.Advance(id, stateEvaluating, stateCommitting, fmt.Sprintf("score %d", verdict.Score), func(sj *store.Job) error {
			sj.Data = mustJSON(rec)
			return nil
		}); err != nil {
			return Verdict{}, err
		}
	}
	if err := unmarshal(j.Data, &rec); err != nil {
		return Verdict{}, fmt.Errorf("job %s: %w", t.JobID, err)
	}
	if j.State == stateCommitting {
		c := Commitment(rec.Verdict.Score, rec.Salt, v.self, jobID)
		tx, err := v.cr.Commit(ctx, t.JobID, c)
		if err != nil {
			return rec.Verdict, fmt.Errorf("job %s: commit: %w", t.JobID, err)
		}
		rec.Commit = tx
		if j, err = v.store.Advance(id, stateCommitting, stateRevealing, "commit tx "+tx, func(sj *store.Job) error {
			sj.Data = mustJSON(rec)
			return nil
		}); err != nil {
			return rec.Verdict, err
		}
	}
	if j.State == stateRevealing {
		tx, err := v.cr.Reveal(ctx, t.JobID, rec.Verdict.Score, rec.Salt)
		if err != nil {
			return rec.Verdict, fmt.Errorf("job %s: reveal: %w", t.JobID, err)
		}
		rec.Verdict.Tx = tx
		if _, err := v.store.Advance(id, stateRevealing, stateRevealed, "reveal tx "+tx, func(sj *store.Job) error {
			sj.Data = mustJSON(rec)
			return nil
		}); err != nil {
			return rec.Verdict, err
		}
	}
	return rec.Verdict, nil
}

// judge asks consent and evaluates a sealed task.
func (v *Validator) judge(ctx context.Context, t Task) (Verdict, error) {
	var lim Limits
	var err error
	if v.consent != nil {
		lim, err = v.consent(t)
	}
	switch {
	case errors.Is(err, ErrDeclined):
		return Verdict{Declined: true, Reason: err.Error()}, nil
	case err != nil:
		return Verdict{}, fmt.Errorf("job %s: consent: %w", t.JobID, err)
	}
	verdict, err := v.evaluate(ctx, t, lim)
	if err != nil {
		return Verdict{}, fmt.Errorf("job %s: %w", t.JobID, err)
	}
	return verdict, nil
}

// openSealed fetches a sealed checkpoint, checks it against the chain, gets its key and
// opens it into a fresh directory. A failure that is the provider's (a ciphertext that
// does not match its hash, a key withheld past KeyBy or not matching the commitment, a
// checkpoint sealed for another job or tampered with) is a reason to score 0; the
// validator's own trouble is an error.
func (v *Validator) openSealed(ctx context.Context, t Task) (dir, reason string, err error) {
	s := t.Sealed
	fetched, err := v.content.Fetch(ctx, t.CheckpointCID)
	if err != nil {
		return "", "", fmt.Errorf("fetch checkpoint %s: %w", t.CheckpointCID, err)
	}
	path := fetched
	if fi, err := os.Stat(fetched); err == nil && fi.IsDir() {
		path = filepath.Join(fetched, SealedFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Sprintf("checkpoint %s holds no %s: %v", t.CheckpointCID, SealedFile, err), nil
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", fmt.Errorf("read checkpoint %s: %w", t.CheckpointCID, err)
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), strings.TrimPrefix(strings.ToLower(t.ResultHash), "0x"); got != want {
		return "", fmt.Sprintf("sealed checkpoint %s has hash %s, the chain says %s", t.CheckpointCID, got, want), nil
	}
	k, reason, err := v.key(ctx, t)
	if err != nil || reason != "" {
		return "", reason, err
	}
	dir = filepath.Join(v.workDir, "eval", t.JobID, "checkpoint")
	if err := os.RemoveAll(dir); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", "", err
	}
	fi, err := f.Stat()
	if err != nil {
		return "", "", err
	}
	// The archive is no larger than the ciphertext that holds it.
	if err := seal.OpenTree(f, dir, k, s.Binding, max(fi.Size(), 1)); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Sprintf("sealed checkpoint %s: %v", t.CheckpointCID, err), nil
	}
	return dir, "", nil
}

// keyRetry is the pause between two asks for a key.
const keyRetry = 5 * time.Second

// key asks the provider for the key until it gets one or KeyBy passes.
func (v *Validator) key(ctx context.Context, t Task) (seal.Key, string, error) {
	s := t.Sealed
	want := common.HexToHash(s.KeyHash)
	for {
		k, err := v.keys.Key(ctx, s.ProviderPeer, s.Binding, want)
		switch {
		case err == nil:
			return k, "", nil
		case errors.Is(err, seal.ErrWrongKey):
			return seal.Key{}, fmt.Sprintf("the provider's key does not match the commitment on chain: %v", err), nil
		case ctx.Err() != nil:
			return seal.Key{}, "", ctx.Err()
		}
		if !time.Now().Before(s.KeyBy) {
			return seal.Key{}, fmt.Sprintf("the provider did not deliver the checkpoint's key by %s: %v", s.KeyBy.UTC().Format(time.RFC3339), err), nil
		}
		v.log.Warn("ask the provider for the checkpoint key again", "job_id", t.JobID, "provider", s.ProviderPeer, "err", err)
		select {
		case <-ctx.Done():
			return seal.Key{}, "", ctx.Err()
		case <-time.After(min(keyRetry, time.Until(s.KeyBy)+time.Millisecond)):
		}
	}
}

// ParseSealed fills s.Binding from its spelled-out fields and job id.
func (s *Sealed) parse(jobID string) error {
	chain, ok1 := new(big.Int).SetString(s.ChainID, 10)
	id, ok2 := new(big.Int).SetString(strings.TrimPrefix(jobID, V2Prefix), 10)
	if !ok1 || !ok2 || !common.IsHexAddress(s.Contract) || !common.IsHexAddress(s.Provider) {
		return errors.New("sealed task: bad chain id, job id, contract or provider")
	}
	s.Binding = seal.Binding{ChainID: chain, Contract: common.HexToAddress(s.Contract), JobID: id, Provider: common.HexToAddress(s.Provider)}
	return s.Binding.Check()
}
