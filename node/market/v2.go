package market

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/job/seal"
	"github.com/gpunode/gpunode/node/api"
)

// ErrNoV2 means the chain configuration names no JobMarketV2.
var ErrNoV2 = errors.New("no JobMarketV2 configured (market.job_market_v2, or a deployment file that has one)")

// V2 is the node's side of JobMarketV2: staked validators drawn at acceptance,
// commit-reveal scores and sealed checkpoints paid against the release of their key. It
// shares the Market's client, account and transaction manager.
type V2 struct {
	m        *Market
	contract common.Address
	abi      *bindings.JobMarketV2
}

// V2 returns the JobMarketV2 side of the market, or ErrNoV2.
func (m *Market) V2() (*V2, error) {
	if m.cfg.JobMarketV2 == "" {
		return nil, ErrNoV2
	}
	return &V2{m: m, contract: common.HexToAddress(m.cfg.JobMarketV2), abi: bindings.NewJobMarketV2()}, nil
}

// Contract is the JobMarketV2's address.
func (v *V2) Contract() common.Address { return v.contract }

// Account is the node's account (the zero address when watch-only).
func (v *V2) Account() common.Address { return v.m.Account() }

// ChainID is the configured chain's id.
func (v *V2) ChainID() *big.Int { return new(big.Int).SetUint64(v.m.cfg.ChainID) }

// The v2 states (JobMarketV2.State).
const (
	V2None JobState = iota
	V2Open
	V2Accepted
	V2Submitted
	V2Passed
	V2Completed
	V2Rejected
	V2NoQuorum
	V2Returned
	V2Cancelled
	V2Expired
)

var v2StateNames = [...]string{"none", "open", "accepted", "submitted", "passed", "completed", "rejected", "no_quorum", "returned", "cancelled", "expired"}

// V2StateName names a v2 state as the contract does, in lower case.
func V2StateName(s uint8) string {
	if int(s) < len(v2StateNames) {
		return v2StateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

func (v *V2) send(ctx context.Context, what string, value *big.Int, data []byte, floor uint64) (*types.Receipt, error) {
	if v.m.tx == nil {
		return nil, fmt.Errorf("%s: %w", what, ErrWatchOnly)
	}
	r, err := v.m.tx.SendWithGasFloor(ctx, v.contract, value, data, floor)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return r, nil
}

func (v *V2) call(ctx context.Context, data []byte) ([]byte, error) {
	return v.m.client.CallContract(ctx, ethereum.CallMsg{To: &v.contract, Data: data})
}

// ---- validator registry ----

// RegisterValidator registers the node's account as a validator with its libp2p peer
// ID, adding stake wei to its stake (which must reach the contract's minStake).
func (v *V2) RegisterValidator(ctx context.Context, peerID string, stake *big.Int) (*types.Receipt, error) {
	return v.send(ctx, "register validator", stake, v.abi.PackRegisterValidator(peerID), 0)
}

// Stake adds amount wei to the node's validator stake.
func (v *V2) Stake(ctx context.Context, amount *big.Int) (*types.Receipt, error) {
	return v.send(ctx, "stake", amount, v.abi.PackStake(), 0)
}

// Unstake starts unbonding: the node is no longer drawn.
func (v *V2) Unstake(ctx context.Context) (*types.Receipt, error) {
	return v.send(ctx, "unstake", nil, v.abi.PackUnstake(), 0)
}

// WithdrawStake moves an unbonded stake to the node's ETH credit.
func (v *V2) WithdrawStake(ctx context.Context) (*types.Receipt, error) {
	return v.send(ctx, "withdraw stake", nil, v.abi.PackWithdrawStake(), 0)
}

// Validator reads account's stake record.
func (v *V2) Validator(ctx context.Context, account common.Address) (bindings.JobMarketV2Validator, error) {
	out, err := v.call(ctx, v.abi.PackValidatorOf(account))
	if err != nil {
		return bindings.JobMarketV2Validator{}, fmt.Errorf("validator %s: %w", account, err)
	}
	return v.abi.UnpackValidatorOf(out)
}

// MinStake is the least stake that makes a validator drawable.
func (v *V2) MinStake(ctx context.Context) (*big.Int, error) {
	out, err := v.call(ctx, v.abi.PackMinStake())
	if err != nil {
		return nil, fmt.Errorf("min stake: %w", err)
	}
	return v.abi.UnpackMinStake(out)
}

// ---- jobs ----

// Job reads job id's on-chain record.
func (v *V2) Job(ctx context.Context, id *big.Int) (bindings.JobMarketV2Job, error) {
	out, err := v.call(ctx, v.abi.PackGetJob(id))
	if err != nil {
		return bindings.JobMarketV2Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	return v.abi.UnpackGetJob(out)
}

// RegisterProvider registers the node as a v2 provider.
func (v *V2) RegisterProvider(ctx context.Context, peerID, reportCID string, reportHash common.Hash) (*types.Receipt, error) {
	return v.send(ctx, "register provider", nil, v.abi.PackRegisterProvider(peerID, reportCID, reportHash), 0)
}

// AcceptJob accepts job id with an ETH bond; the contract draws its validators from the
// registry, or from allowlist when useAllowlist.
func (v *V2) AcceptJob(ctx context.Context, id *big.Int, useAllowlist bool, allowlist []common.Address, ethBond *big.Int) (*types.Receipt, error) {
	return v.send(ctx, "accept job "+id.String(), ethBond, v.abi.PackAcceptJob(id, useAllowlist, allowlist), 0)
}

// SubmitResult submits a sealed checkpoint: its CID, the ciphertext's hash and keccak256(K).
func (v *V2) SubmitResult(ctx context.Context, id *big.Int, cid string, resultHash, keyHash common.Hash) (*types.Receipt, error) {
	return v.send(ctx, "submit job "+id.String(), nil, v.abi.PackSubmitResult(id, cid, resultHash, keyHash), 0)
}

// GiveBack hands an accepted job back with the hash of the failure's log.
func (v *V2) GiveBack(ctx context.Context, id *big.Int, logHash common.Hash) (*types.Receipt, error) {
	return v.send(ctx, "give back job "+id.String(), nil, v.abi.PackGiveBack(id, logHash), 0)
}

// revealGasFloor: the reveal that completes the set decides the job, slashing and
// crediting on top of the reveal itself, and its estimate may have seen the set open.
const revealGasFloor = 300_000

// Commit commits the node's score commitment for job id; drawn is the job's drawn list.
func (v *V2) Commit(ctx context.Context, id *big.Int, drawn []common.Address, commitment common.Hash) (*types.Receipt, error) {
	return v.send(ctx, "commit job "+id.String(), nil, v.abi.PackCommit(id, drawn, commitment), 0)
}

// Reveal reveals the node's committed score and salt for job id.
func (v *V2) Reveal(ctx context.Context, id *big.Int, drawn []common.Address, score uint32, salt common.Hash) (*types.Receipt, error) {
	return v.send(ctx, "reveal job "+id.String(), nil, v.abi.PackReveal(id, drawn, score, salt), revealGasFloor)
}

// Finalize decides a submitted job past its reveal deadline (anyone may).
func (v *V2) Finalize(ctx context.Context, id *big.Int, drawn []common.Address) (*types.Receipt, error) {
	return v.send(ctx, "finalize job "+id.String(), nil, v.abi.PackFinalize(id, drawn), revealGasFloor)
}

// ReleaseKey publishes the checkpoint key of a passed job, which pays its provider.
func (v *V2) ReleaseKey(ctx context.Context, id *big.Int, key common.Hash) (*types.Receipt, error) {
	return v.send(ctx, "release key of job "+id.String(), nil, v.abi.PackReleaseKey(id, key), 0)
}

// Commitment reads validator's stored commitment for job id (zero: none, or revealed).
func (v *V2) Commitment(ctx context.Context, id *big.Int, validator common.Address) (common.Hash, error) {
	out, err := v.call(ctx, v.abi.PackCommitments(id, validator))
	if err != nil {
		return common.Hash{}, fmt.Errorf("commitment of %s for job %s: %w", validator, id, err)
	}
	h, err := v.abi.UnpackCommitments(out)
	return common.Hash(h), err
}

// ---- events of one job ----

// logs returns the contract's logs of event for job id (its first indexed topic).
func (v *V2) logs(ctx context.Context, event string, id *big.Int) ([]types.Log, error) {
	ev, ok := v.abi.GetABI().Events[event]
	if !ok {
		return nil, fmt.Errorf("no event %s in JobMarketV2", event)
	}
	q := ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(v.m.cfg.StartBlock),
		Addresses: []common.Address{v.contract},
		Topics:    [][]common.Hash{{ev.ID}, {common.BigToHash(id)}},
	}
	logs, err := v.m.client.FilterLogs(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s logs of job %s: %w", event, id, err)
	}
	return logs, nil
}

// Accepted returns job id's JobAccepted event: its provider and drawn validators.
func (v *V2) Accepted(ctx context.Context, id *big.Int) (*bindings.JobMarketV2JobAccepted, error) {
	logs, err := v.logs(ctx, "JobAccepted", id)
	if err != nil {
		return nil, err
	}
	if len(logs) == 0 {
		return nil, fmt.Errorf("job %s: not accepted on chain", id)
	}
	return v.abi.UnpackJobAcceptedEvent(&logs[len(logs)-1])
}

// Posted returns job id's JobPosted event.
func (v *V2) Posted(ctx context.Context, id *big.Int) (*bindings.JobMarketV2JobPosted, error) {
	logs, err := v.logs(ctx, "JobPosted", id)
	if err != nil {
		return nil, err
	}
	if len(logs) == 0 {
		return nil, fmt.Errorf("job %s: not posted on chain", id)
	}
	return v.abi.UnpackJobPostedEvent(&logs[0])
}

// Submitted returns job id's ResultSubmitted event: the sealed checkpoint's CID, hashes
// and the commit and reveal deadlines.
func (v *V2) Submitted(ctx context.Context, id *big.Int) (*bindings.JobMarketV2ResultSubmitted, error) {
	logs, err := v.logs(ctx, "ResultSubmitted", id)
	if err != nil {
		return nil, err
	}
	if len(logs) == 0 {
		return nil, fmt.Errorf("job %s: no result submitted", id)
	}
	return v.abi.UnpackResultSubmittedEvent(&logs[len(logs)-1])
}

// ReleasedKey returns the key published for job id, false while none is.
func (v *V2) ReleasedKey(ctx context.Context, id *big.Int) (common.Hash, bool, error) {
	logs, err := v.logs(ctx, "KeyReleased", id)
	if err != nil || len(logs) == 0 {
		return common.Hash{}, false, err
	}
	ev, err := v.abi.UnpackKeyReleasedEvent(&logs[len(logs)-1])
	if err != nil {
		return common.Hash{}, false, err
	}
	return common.Hash(ev.Key), true, nil
}

// Vote is one validator's commit and reveal for a job, as the chain shows them.
type Vote struct {
	Validator  common.Address
	Commitment common.Hash
	Revealed   bool
	Score      uint32
	Pass       bool
	Slashed    *big.Int
}

// Votes lists the commits, reveals and slashes of job id, in the drawn order.
func (v *V2) Votes(ctx context.Context, id *big.Int) ([]Vote, error) {
	acc, err := v.Accepted(ctx, id)
	if err != nil {
		return nil, err
	}
	votes := make([]Vote, len(acc.Validators))
	at := map[common.Address]*Vote{}
	for i, a := range acc.Validators {
		votes[i].Validator = a
		at[a] = &votes[i]
	}
	commits, err := v.logs(ctx, "Committed", id)
	if err != nil {
		return nil, err
	}
	for i := range commits {
		if e, err := v.abi.UnpackCommittedEvent(&commits[i]); err == nil && at[e.Validator] != nil {
			at[e.Validator].Commitment = e.Commitment
		}
	}
	reveals, err := v.logs(ctx, "Revealed", id)
	if err != nil {
		return nil, err
	}
	for i := range reveals {
		if e, err := v.abi.UnpackRevealedEvent(&reveals[i]); err == nil && at[e.Validator] != nil {
			at[e.Validator].Revealed, at[e.Validator].Score, at[e.Validator].Pass = true, e.Score, e.Pass
		}
	}
	slashes, err := v.logs(ctx, "Slashed", id)
	if err != nil {
		return nil, err
	}
	for i := range slashes {
		if e, err := v.abi.UnpackSlashedEvent(&slashes[i]); err == nil && at[e.Validator] != nil {
			at[e.Validator].Slashed = e.Amount
		}
	}
	return votes, nil
}

// PostJob posts a job as its sponsor, escrowing value wei (reward + fees, for an ETH job).
func (v *V2) PostJob(ctx context.Context, p bindings.JobMarketV2JobParams, value *big.Int) (*big.Int, *types.Receipt, error) {
	r, err := v.send(ctx, "post job", value, v.abi.PackPostJob(p), 0)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range r.Logs {
		if l.Address != v.contract {
			continue
		}
		if ev, err := v.abi.UnpackJobPostedEvent(l); err == nil {
			return ev.JobId, r, nil
		}
	}
	return nil, r, errors.New("post job: no JobPosted event in the receipt")
}

// Expire ends job id after its deadline (anyone may).
func (v *V2) Expire(ctx context.Context, id *big.Int) (*types.Receipt, error) {
	return v.send(ctx, "expire job "+id.String(), nil, v.abi.PackExpire(id), 0)
}

// Now is the chain's time (the latest block's timestamp).
func (v *V2) Now(ctx context.Context) (time.Time, error) { return v.m.Now(ctx) }

// V2Dial is how a command reaches JobMarketV2 without a daemon.
type V2Dial struct {
	URL      string
	ChainID  uint64 // 0: ask the endpoint
	Contract common.Address
	// StartBlock is where event searches begin (the deployment block).
	StartBlock uint64
	// Confirmations is the depth a transaction waits for.
	Confirmations uint64
}

// DialV2 connects to JobMarketV2 as key's account (nil key: read-only). Close the
// returned V2 when done.
func DialV2(ctx context.Context, d V2Dial, key *ecdsa.PrivateKey, log *slog.Logger) (*V2, error) {
	if d.URL == "" || d.Contract == (common.Address{}) {
		return nil, ErrNoV2
	}
	c, err := Dial(ClientConfig{URL: d.URL, Retries: 3}, log, nil)
	if err != nil {
		return nil, err
	}
	if d.ChainID == 0 {
		id, err := c.ChainID(ctx)
		if err != nil {
			c.Close()
			return nil, err
		}
		d.ChainID = id.Uint64()
	}
	m := &Market{cfg: Config{ChainID: d.ChainID, JobMarketV2: d.Contract.Hex(), StartBlock: d.StartBlock}, log: log, client: c}
	if key != nil {
		tc := DefaultTxConfig()
		tc.ChainID, tc.Confirmations, tc.PollInterval = d.ChainID, max(d.Confirmations, 1), 200*time.Millisecond
		m.tx = NewTxManager(tc, c, key, log, nil)
	}
	return m.V2()
}

// Close closes a V2 made by DialV2.
func (v *V2) Close() { v.m.client.Close() }

// SealedResult is what the chain says of a job's sealed checkpoint.
type SealedResult struct {
	CID        string
	ResultHash common.Hash // sha256 of the ciphertext
	KeyHash    common.Hash // keccak256(K)
	Provider   common.Address
	// Key is K once the provider (or a validator) released it on payment.
	Key      common.Hash
	Released bool
}

// SealedResult reads job id's sealed checkpoint and, once released, its key.
func (v *V2) SealedResult(ctx context.Context, id *big.Int) (SealedResult, error) {
	sub, err := v.Submitted(ctx, id)
	if err != nil {
		return SealedResult{}, err
	}
	r := SealedResult{CID: sub.CheckpointCID, ResultHash: sub.ResultHash, KeyHash: sub.KeyHash, Provider: sub.Provider}
	r.Key, r.Released, err = v.ReleasedKey(ctx, id)
	return r, err
}

// Binding is what job id's sealed checkpoint must be bound to, made by provider.
func (v *V2) Binding(id *big.Int, provider common.Address) seal.Binding {
	return seal.Binding{ChainID: v.ChainID(), Contract: v.contract, JobID: id, Provider: provider}
}

// decodeEventV2 decodes a JobMarketV2 log into its binding type.
func decodeEventV2(e Event) (any, error) {
	a := bindings.NewJobMarketV2()
	l := &e.Log
	switch e.Name {
	case "ProviderRegistered":
		return a.UnpackProviderRegisteredEvent(l)
	case "ValidatorRegistered":
		return a.UnpackValidatorRegisteredEvent(l)
	case "Staked":
		return a.UnpackStakedEvent(l)
	case "Unstaking":
		return a.UnpackUnstakingEvent(l)
	case "StakeWithdrawn":
		return a.UnpackStakeWithdrawnEvent(l)
	case "Slashed":
		return a.UnpackSlashedEvent(l)
	case "JobPosted":
		return a.UnpackJobPostedEvent(l)
	case "JobCancelled":
		return a.UnpackJobCancelledEvent(l)
	case "JobAccepted":
		return a.UnpackJobAcceptedEvent(l)
	case "ResultSubmitted":
		return a.UnpackResultSubmittedEvent(l)
	case "Committed":
		return a.UnpackCommittedEvent(l)
	case "Revealed":
		return a.UnpackRevealedEvent(l)
	case "JobDecided":
		return a.UnpackJobDecidedEvent(l)
	case "KeyReleased":
		return a.UnpackKeyReleasedEvent(l)
	case "JobCompleted":
		return a.UnpackJobCompletedEvent(l)
	case "JobReturned":
		return a.UnpackJobReturnedEvent(l)
	case "JobExpired":
		return a.UnpackJobExpiredEvent(l)
	case "Withdrawn":
		return a.UnpackWithdrawnEvent(l)
	}
	return nil, fmt.Errorf("log %s: not a known JobMarketV2 event", e.ID())
}

// Provider reads account's v2 provider record: whether it is registered, and the hash
// of the benchmark report it registered with.
func (v *V2) Provider(ctx context.Context, account common.Address) (bool, common.Hash, error) {
	out, err := v.call(ctx, v.abi.PackProviderOf(account))
	if err != nil {
		return false, common.Hash{}, fmt.Errorf("provider %s: %w", account, err)
	}
	p, err := v.abi.UnpackProviderOf(out)
	if err != nil {
		return false, common.Hash{}, fmt.Errorf("provider %s: %w", account, err)
	}
	return p.RegisteredAt.Sign() > 0, p.ReportHash, nil
}

// ProviderPeer returns the libp2p peer ID provider registered last, checked against the
// hash the contract keeps.
func (v *V2) ProviderPeer(ctx context.Context, provider common.Address) (string, error) {
	ev, ok := v.abi.GetABI().Events["ProviderRegistered"]
	if !ok {
		return "", errors.New("no ProviderRegistered event in JobMarketV2")
	}
	logs, err := v.m.client.FilterLogs(ctx, ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(v.m.cfg.StartBlock),
		Addresses: []common.Address{v.contract},
		Topics:    [][]common.Hash{{ev.ID}, {common.BytesToHash(provider[:])}},
	})
	if err != nil {
		return "", fmt.Errorf("provider %s: %w", provider, err)
	}
	if len(logs) == 0 {
		return "", fmt.Errorf("provider %s: not registered on JobMarketV2", provider)
	}
	reg, err := v.abi.UnpackProviderRegisteredEvent(&logs[len(logs)-1])
	if err != nil {
		return "", err
	}
	return reg.PeerId, nil
}

// postV2 posts the job req describes on JobMarketV2 (req.ValidatorCount set), paid in
// ETH from the node's account, and waits for its confirmation.
func (m *Market) postV2(ctx context.Context, req api.PostJobRequest) (api.PostJobResult, error) {
	invalid := func(format string, a ...any) (api.PostJobResult, error) {
		return api.PostJobResult{}, api.WithClass(api.ErrInvalidArgument, fmt.Errorf(format, a...))
	}
	v, err := m.V2()
	if err != nil {
		return api.PostJobResult{}, api.WithClass(api.ErrInvalidArgument, err)
	}
	if len(req.Validators) > 0 {
		return invalid("validators: a JobMarketV2 job draws its validators; give validator_count only")
	}
	if req.Token != "" && req.Token != (common.Address{}).Hex() {
		return invalid("token: this node posts ETH jobs on JobMarketV2")
	}
	if req.Quorum < 1 || req.Quorum > req.ValidatorCount {
		return invalid("quorum %d: want 1..%d (the validators drawn)", req.Quorum, req.ValidatorCount)
	}
	if req.CommitWindowSeconds == 0 || req.RevealWindowSeconds == 0 || req.CommitWindowSeconds >= 1<<24 || req.RevealWindowSeconds >= 1<<24 {
		return invalid("commit and reveal windows: want 1 s to 194 days each")
	}
	// The v1 checks of amounts, hash and CID apply as they are.
	v1 := req
	v1.Validators, v1.Quorum = []string{(common.Address{1}).Hex()}, 1
	p1, err := jobParams(v1)
	if err != nil {
		return api.PostJobResult{}, api.WithClass(api.ErrInvalidArgument, err)
	}
	if p1.ValidatorFee.BitLen() > 80 || p1.Reward.BitLen() > 96 || p1.Bond.BitLen() > 96 {
		return invalid("reward, bond or validator fee too large for the contract")
	}
	now, err := m.Now(ctx)
	if err != nil {
		return api.PostJobResult{}, err
	}
	p := bindings.JobMarketV2JobParams{
		Reward: p1.Reward, ValidatorFee: p1.ValidatorFee, Bond: p1.Bond, Threshold: req.Threshold,
		LowerIsBetter: req.LowerIsBetter, ValidatorCount: req.ValidatorCount, Quorum: req.Quorum,
		AcceptBy:  big.NewInt(now.Add(time.Duration(req.AcceptWithinSeconds) * time.Second).Unix()),
		RunWindow: req.RunWindowSeconds, CommitWindow: big.NewInt(int64(req.CommitWindowSeconds)),
		RevealWindow: big.NewInt(int64(req.RevealWindowSeconds)), ManifestCID: req.ManifestCID, ManifestHash: p1.ManifestHash,
	}
	value := new(big.Int).Add(p.Reward, new(big.Int).Mul(p.ValidatorFee, big.NewInt(int64(req.ValidatorCount))))
	id, rec, err := v.PostJob(ctx, p, value)
	if err != nil {
		return api.PostJobResult{}, txError(err)
	}
	return api.PostJobResult{JobID: id.String(), TxHash: rec.TxHash.Hex(), Contract: "JobMarketV2"}, nil
}
