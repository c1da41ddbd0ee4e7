package node

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
	"sync/atomic"
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

// chain joins the market contract to the node's work: JobPosted events become jobs for
// the job machine (or validation duties, when the node is one of the job's validators),
// ResultSubmitted events start validations, and the contract serves as the machine's and
// the validator's jobs.Chain and validator.Chain.
type chain struct {
	m       *market.Market
	store   *store.Store
	content jobs.Content
	log     *slog.Logger

	// peerID is the node's libp2p identity, registered on chain with the provider.
	peerID string

	mu       sync.Mutex
	machine  *jobs.Machine
	val      *validator.Validator
	wg       sync.WaitGroup
	retryGap time.Duration

	// withdrawing is set while an automatic withdrawal is under way.
	withdrawing atomic.Bool

	// report publishes the node's signed benchmark report and returns its CID and the
	// sha256 of its bytes; nil when the node has no benchmark. reportCID is the CID
	// registered last.
	report    func(ctx context.Context) (string, common.Hash, error)
	reportCID atomic.Value

	// duties judges validation duties by the policy's [validator] rules; nil allows all.
	dutyPolicy validator.DutyPolicy

	// posted caches the chain's answers about the jobs peers offer.
	posted *postedCache
}

// duty is what a validator keeps of a job it judges, from JobPosted on.
type duty struct {
	Posting       jobs.Posting `json:"posting"`
	Threshold     uint32       `json:"threshold"`
	FeeWei        string       `json:"fee_wei,omitempty"`
	CheckpointCID string       `json:"checkpoint_cid,omitempty"`
	ResultHash    string       `json:"result_hash,omitempty"`
}

const (
	dutyDeclined  = "declined"
	dutyPosted    = "posted"
	dutySubmitted = "submitted"
	dutyDone      = "done"
)

func dutyKey(id string) string { return "duty-" + id }

func newChain(m *market.Market, st *store.Store, content jobs.Content, log *slog.Logger) *chain {
	return &chain{m: m, store: st, content: content, log: log.With("component", "chain"), retryGap: 30 * time.Second,
		posted: newPostedCache(4096, 30*time.Second)}
}

// attach gives the chain the job machine and the validator once they exist.
func (c *chain) attach(m *jobs.Machine, v *validator.Validator) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.machine, c.val = m, v
}

// handle is the market's event handler. Every confirmed event arrives once; acting on one
// twice is harmless anyway (the machine and the duties ignore what they know).
func (c *chain) handle(ctx context.Context, e market.Event) error {
	ev, err := market.DecodeEvent(e)
	if err != nil {
		c.log.Warn("undecodable chain event", "event", e.ID(), "err", err)
		return nil
	}
	self := c.m.Account()
	switch v := ev.(type) {
	case *bindings.JobMarketJobPosted:
		p := posting(v)
		switch {
		case hasAddress(v.Validators, self):
			c.mu.Lock()
			judging := c.val != nil
			c.mu.Unlock()
			if !judging {
				c.log.Warn("named validator of a job, but the validator role is off ([validator] enabled = false)", "job_id", p.ID)
				return nil
			}
			return c.remember(p, v.Threshold, v.ValidatorFee)
		case v.Sponsor == self:
			return c.sponsored(p.ID) // our own job, as a researcher
		}
		c.mu.Lock()
		m := c.machine
		c.mu.Unlock()
		if m == nil {
			return nil
		}
		return m.Discover(ctx, p)
	case *bindings.JobMarketResultSubmitted:
		return c.submitted(ctx, v)
	case *bindings.JobMarketJobCompleted:
		if v.Provider == self {
			return c.bookJob(ctx, e, kindReward, v.JobId, func(j bindings.JobMarketJob) *big.Int { return j.Reward })
		}
	case *bindings.JobMarketAttested:
		if v.Validator == self {
			return c.bookJob(ctx, e, kindFee, v.JobId, func(j bindings.JobMarketJob) *big.Int { return j.ValidatorFee })
		}
	case *bindings.JobMarketWithdrawn:
		if v.Account == self {
			return c.book(ctx, e, kindWithdrawal, "", v.Token, v.Amount)
		}
	}
	return nil
}

func posting(v *bindings.JobMarketJobPosted) jobs.Posting {
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

func hasAddress(list []common.Address, a common.Address) bool {
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

// remember records a validation duty for a job that names this node as a validator. A
// duty the policy's [validator] rules decline on what the chain says (sponsor, fee,
// token) is recorded as declined: its result is never fetched nor evaluated.
func (c *chain) remember(p jobs.Posting, threshold uint32, fee *big.Int) error {
	if fee == nil {
		fee = new(big.Int)
	}
	d := duty{Posting: p, Threshold: threshold, FeeWei: fee.String()}
	state, note := dutyPosted, "named as validator"
	if reason := c.declineDuty(d, ""); reason != "" {
		state, note = dutyDeclined, "declined: "+reason
	}
	raw, _ := json.Marshal(d)
	err := c.store.Create(store.Job{ID: dutyKey(p.ID), State: state, Data: raw}, note)
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	switch {
	case err != nil:
	case state == dutyDeclined:
		c.log.Warn("validation duty declined: it will not be evaluated", "job_id", p.ID, "sponsor", p.Sponsor, "reason", note)
	default:
		c.log.Info("validator of job", "job_id", p.ID, "sponsor", p.Sponsor)
	}
	return err
}

// declineDuty says why the policy declines duty d with evaluation image img ("" before
// the manifest is read), or "" if it allows it.
func (c *chain) declineDuty(d duty, img string) string {
	if c.dutyPolicy == nil {
		return ""
	}
	_, err := validator.PolicyConsent(c.dutyPolicy)(validator.Task{JobID: d.Posting.ID, Sponsor: d.Posting.Sponsor, Token: d.Posting.Token, FeeWei: d.FeeWei, EvalImage: img})
	if err != nil {
		return err.Error()
	}
	return ""
}

func (c *chain) submitted(ctx context.Context, v *bindings.JobMarketResultSubmitted) error {
	id := v.JobId.String()
	_, err := c.store.Advance(dutyKey(id), dutyPosted, dutySubmitted, "result "+v.CheckpointCID, func(j *store.Job) error {
		var d duty
		if err := json.Unmarshal(j.Data, &d); err != nil {
			return err
		}
		d.CheckpointCID, d.ResultHash = v.CheckpointCID, hex.EncodeToString(v.ResultHash[:])
		j.Data, _ = json.Marshal(d)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return nil // not ours to judge, or already known
	}
	if err != nil {
		return err
	}
	c.spawnValidation(ctx, id)
	return nil
}

// duties counts the validation duties by state.
func (c *chain) duties() map[string]int {
	list, err := c.store.List(func(j store.Job) bool { return strings.HasPrefix(j.ID, "duty-") })
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, j := range list {
		out[j.State]++
	}
	return out
}

// resume restarts the validations a stopped node left unfinished.
func (c *chain) resume(ctx context.Context) error {
	open, err := c.store.List(func(j store.Job) bool {
		return strings.HasPrefix(j.ID, "duty-") && j.State == dutySubmitted
	})
	if err != nil {
		return err
	}
	for _, j := range open {
		c.spawnValidation(ctx, strings.TrimPrefix(j.ID, "duty-"))
	}
	return nil
}

func (c *chain) spawnValidation(ctx context.Context, id string) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for attempt := 1; ctx.Err() == nil; attempt++ {
			err := c.validate(ctx, id)
			if err == nil {
				return
			}
			c.log.Warn("validation failed; retrying", "job_id", id, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(c.retryGap):
			}
		}
	}()
}

func (c *chain) validate(ctx context.Context, id string) error {
	c.mu.Lock()
	v := c.val
	c.mu.Unlock()
	if v == nil {
		return errors.New("this node runs no validator (no container runtime)")
	}
	j, err := c.store.Get(dutyKey(id))
	if err != nil {
		return err
	}
	var d duty
	if err := json.Unmarshal(j.Data, &d); err != nil {
		return err
	}
	raw, err := c.content.Get(ctx, d.Posting.ManifestCID, job.MaxManifestBytes)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Posting.ManifestCID, err)
	}
	sum := sha256.Sum256(raw)
	task := validator.Task{JobID: id, CheckpointCID: d.CheckpointCID, ResultHash: d.ResultHash, Threshold: d.Threshold,
		Sponsor: d.Posting.Sponsor, Token: d.Posting.Token, FeeWei: d.FeeWei}
	if hex.EncodeToString(sum[:]) == d.Posting.ManifestHash {
		if man, err := job.Decode(strings.NewReader(string(raw))); err == nil {
			task.EvalImage, task.EvalCommand, task.Metric = man.Evaluation.Image, man.Evaluation.Command, man.Evaluation.Metric
			for _, in := range man.Evaluation.Inputs {
				task.EvalInputs = append(task.EvalInputs, validator.EvalInput{CID: in.CID, Path: in.Path})
			}
		}
	}
	verdict, err := v.Validate(ctx, task)
	if err != nil {
		return err
	}
	if verdict.Declined {
		_, err = c.store.Advance(dutyKey(id), dutySubmitted, dutyDeclined, verdict.Reason, nil)
		return err
	}
	c.log.Info("attested", "job_id", id, "score", verdict.Score, "pass", verdict.Pass, "reason", verdict.Reason)
	_, err = c.store.Advance(dutyKey(id), dutySubmitted, dutyDone, fmt.Sprintf("score %d", verdict.Score), nil)
	return err
}

// register makes the node a provider on chain (acceptJob refuses unregistered
// accounts) with its signed benchmark report, and registers again when the report
// changes; a watch-only node cannot and says so.
func (c *chain) register(ctx context.Context) error {
	self := c.m.Account()
	if self == (common.Address{}) {
		return errors.New("watch-only: unlock the market key to take jobs")
	}
	ok, current, err := c.m.Provider(ctx, self)
	if err != nil {
		return err
	}
	var reportCID string
	var reportHash common.Hash
	if c.report != nil {
		cid, hash, err := c.report(ctx)
		switch {
		case err != nil && ok:
			return fmt.Errorf("publish the benchmark report: %w", err) // keep the registered one
		case err != nil:
			c.log.Warn("cannot publish the benchmark report; registering without it", "err", err)
		default:
			reportCID, reportHash = cid, hash
		}
	}
	if ok && current == reportHash {
		c.reportCID.Store(reportCID)
		return nil
	}
	if c.peerID == "" {
		return errors.New("no peer ID to register: the p2p network is off")
	}
	r, err := c.m.RegisterProvider(ctx, c.peerID, reportCID, reportHash)
	if err != nil {
		return fmt.Errorf("register provider: %w", err)
	}
	c.reportCID.Store(reportCID)
	c.log.Info("registered as provider", "account", self.Hex(), "peer_id", c.peerID, "report_cid", reportCID, "tx", r.TxHash.Hex())
	return nil
}

// publishedReport is the CID of the benchmark report the node registered, if any.
func (c *chain) publishedReport() string {
	s, _ := c.reportCID.Load().(string)
	return s
}

// wait waits for the validations under way to stop.
func (c *chain) wait() { c.wg.Wait() }

func jobID(id string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(id, 10)
	if !ok {
		return nil, fmt.Errorf("%w: job %q is not a chain job id", jobs.ErrPermanent, id)
	}
	return n, nil
}

// reached reads job id from the chain and tells whether this node has already taken it
// to state st or beyond, so a step repeated after a crash is not sent twice.
func (c *chain) reached(ctx context.Context, id string, st market.JobState) (*big.Int, bool, error) {
	n, err := jobID(id)
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
func (c *chain) Accept(ctx context.Context, id string) (string, error) {
	n, done, err := c.reached(ctx, id, market.StateAccepted)
	if err != nil {
		return "", err
	}
	if done {
		return "already accepted", nil
	}
	c.mu.Lock()
	m := c.machine
	c.mu.Unlock()
	j, err := m.Get(id)
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
func (c *chain) Submit(ctx context.Context, id, cid, hash string) (string, error) {
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
func (c *chain) Abandon(ctx context.Context, id, reason string) (string, error) {
	n, err := jobID(id)
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
func (c *chain) Outcome(ctx context.Context, id string) (jobs.Outcome, error) {
	n, err := jobID(id)
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

// Attest implements validator.Chain.
func (c *chain) Attest(ctx context.Context, id string, score uint32) (string, error) {
	n, err := jobID(id)
	if err != nil {
		return "", err
	}
	j, err := c.store.Get(dutyKey(id))
	if err != nil {
		return "", err
	}
	var d duty
	if err := json.Unmarshal(j.Data, &d); err != nil {
		return "", err
	}
	var validators []common.Address
	self, idx := c.m.Account(), -1
	for i, a := range d.Posting.Validators {
		validators = append(validators, common.HexToAddress(a))
		if common.HexToAddress(a) == self {
			idx = i
		}
	}
	view, err := c.m.Job(ctx, n)
	if err != nil {
		return "", err
	}
	if idx >= 0 && view.Attested&(1<<idx) != 0 {
		return "already attested", nil
	}
	if market.JobState(view.State) != market.StateSubmitted {
		return "job no longer awaits attestations", nil
	}
	r, err := c.m.Attest(ctx, n, validators, common.HexToHash(d.ResultHash), score)
	if err != nil {
		return "", err
	}
	return r.TxHash.Hex(), nil
}
