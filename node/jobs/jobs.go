// Package jobs is the node's job state machine: a job found on chain or offered directly
// is evaluated, accepted, prepared, run, published and submitted, and its outcome is
// followed until the node is paid or the job ends another way.
//
// Every transition is written to the store before its side effect, and each side effect
// is idempotent or checked on restart, so a node killed at any point resumes the job
// where it was and never starts or submits it twice.
package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/runtime"
)

// State is where a job is in its life.
type State string

// The states, in the order a successful job passes them.
const (
	Discovered State = "discovered" // seen on chain or offered; not evaluated yet
	Accepting  State = "accepting"  // accept transaction under way
	Accepted   State = "accepted"   // this node is the job's provider
	Preparing  State = "preparing"  // inputs, image and GPUs being readied
	Running    State = "running"    // container started
	Uploading  State = "uploading"  // output being published to IPFS
	Submitting State = "submitting" // result transaction under way
	Submitted  State = "submitted"  // result on chain; validators at work
	Paid       State = "paid"       // validators confirmed it; reward credited

	Declined State = "declined" // not taken: policy, capacity, a bad manifest
	Failed   State = "failed"   // taken but could not be completed; sponsor refunded
	Rejected State = "rejected" // validators scored it below the threshold
	Expired  State = "expired"  // a deadline passed on chain
	Lost     State = "lost"     // another provider accepted it first
)

// Terminal tells whether a job in state s is finished for this node.
func (s State) Terminal() bool {
	switch s {
	case Paid, Declined, Failed, Rejected, Expired, Lost:
		return true
	}
	return false
}

// Posting is a job as it is announced: a JobPosted event or a direct offer.
type Posting struct {
	ID           string    `json:"id"`
	Sponsor      string    `json:"sponsor"`
	ManifestCID  string    `json:"manifest_cid"`
	ManifestHash string    `json:"manifest_hash"` // hex sha256 of the manifest bytes
	RewardWei    string    `json:"reward_wei"`
	Deadline     time.Time `json:"deadline,omitempty"`
	// Source is "chain", "offer" or "pool" (SourcePool).
	Source string `json:"source"`
	// Cluster is the rig's place in a multi-rig job (resources.nodes > 1), which only a
	// pool dispatches; it goes into the container's runtime.Spec. Nil for one rig.
	Cluster *runtime.Cluster `json:"cluster,omitempty"`
	// PoolDispatch is the sequence number of the pool's dispatch that handed the job
	// over (Source "pool"), which the member's result answers.
	PoolDispatch uint64 `json:"pool_dispatch,omitempty"`
	// Sealed marks a JobMarketV2 job: its output is sealed before it is published
	// (Deps.Sealer), and its validators are drawn at acceptance.
	Sealed bool `json:"sealed,omitempty"`
	// ValidatorCount is how many validators a JobMarketV2 job draws at acceptance, and
	// LowerIsBetter its metric's direction on chain.
	ValidatorCount int  `json:"validator_count,omitempty"`
	LowerIsBetter  bool `json:"lower_is_better,omitempty"`
	// Validators, BondWei and Token are the contract's terms of a job from the chain: who
	// judges the result, and what the provider locks on accepting.
	Validators []string `json:"validators,omitempty"`
	BondWei    string   `json:"bond_wei,omitempty"`
	Token      string   `json:"token,omitempty"`
	// Threshold is the score the validators compare with (the manifest's threshold ×
	// 10⁶), Quorum how many must attest, RunWindow the time from acceptance to the
	// submission deadline and AttestWindow the validators' time after it. A zero
	// RunWindow means the terms are unknown (the chain never posts one).
	Threshold           uint32 `json:"threshold,omitempty"`
	Quorum              int    `json:"quorum,omitempty"`
	RunWindowSeconds    uint32 `json:"run_window_seconds,omitempty"`
	AttestWindowSeconds uint32 `json:"attest_window_seconds,omitempty"`
}

// SourcePool is the Source of a job the node's pool coordinator dispatched to it: the
// coordinator accepted it on chain and checked the contract's terms against the manifest,
// so the member does not compare them again (it has no terms to compare), but it still
// checks the manifest, its own policy and the dry run like any job's.
const SourcePool = "pool"

// RunWindow is the time the provider has from acceptance to submission.
func (p Posting) RunWindow() time.Duration { return time.Duration(p.RunWindowSeconds) * time.Second }

// Record is everything the node keeps about a job, stored with it.
type Record struct {
	Posting  Posting       `json:"posting"`
	Manifest *job.Manifest `json:"manifest,omitempty"`
	// Reason says why a job was declined or failed, or what went wrong last.
	Reason     string          `json:"reason,omitempty"`
	GPUs       []string        `json:"gpus,omitempty"`
	OutputDir  string          `json:"output_dir,omitempty"`
	Result     *runtime.Result `json:"result,omitempty"`
	OutputCID  string          `json:"output_cid,omitempty"`
	OutputHash string          `json:"output_hash,omitempty"`
	// KeyHash is keccak256(K) of a sealed output's key (JobMarket v2), hex; OutputHash is
	// then the sha256 of the ciphertext.
	KeyHash  string `json:"key_hash,omitempty"`
	AcceptTx string `json:"accept_tx,omitempty"`
	SubmitTx string `json:"submit_tx,omitempty"`
	// Refund says how a failed job was given back on chain, once it has been.
	Refund string `json:"refund,omitempty"`
	// Attempts counts retries of the current step.
	Attempts int `json:"attempts,omitempty"`
	// Preflight is what the dry run before acceptance measured.
	Preflight *Preflight `json:"preflight,omitempty"`
	// DeclineTold says that the chain adapter (a DeclineNotifier: the pool) heard that
	// this job of Source "pool" was declined.
	DeclineTold bool `json:"decline_told,omitempty"`
	// Cancelled says why the job was cancelled (Machine.Cancel: a pool took it back), once
	// it was: the job is stopped, not run on, also after a restart.
	Cancelled string `json:"cancelled,omitempty"`
}

// Job is a job and its record, as listed by the API.
type Job struct {
	ID        string    `json:"id"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Record
}

// Outcome is what the chain says of a job.
type Outcome string

// Outcomes.
const (
	OutcomePending   Outcome = "pending"   // not decided yet
	OutcomeCompleted Outcome = "completed" // validators confirmed; provider credited
	OutcomeRejected  Outcome = "rejected"  // validators scored it below the threshold
	OutcomeExpired   Outcome = "expired"   // a deadline passed; sponsor refunded
	OutcomeTaken     Outcome = "taken"     // another provider accepted it
)

// Chain is what the state machine needs of the market contract. Accept and Submit must
// be idempotent: repeating one that already took effect for this node succeeds, so a
// node that crashed after sending a transaction can send it again.
type Chain interface {
	Accept(ctx context.Context, id string) (tx string, err error)
	Submit(ctx context.Context, id, cid, hash string) (tx string, err error)
	// Abandon gives a taken job back so that the sponsor is refunded, and says how. It
	// may wait for a deadline on chain; it must be idempotent.
	Abandon(ctx context.Context, id, reason string) (refund string, err error)
	Outcome(ctx context.Context, id string) (Outcome, error)
}

// DeclineNotifier is a Chain that must hear when a job it handed the machine is declined
// after all (a pool member's adapter: its coordinator then gives the job to another
// member at once). The machine calls Declined once per job of Source "pool" that ends
// Declined, again after a restart until it succeeded; it must be idempotent. An error
// wrapping ErrPermanent means there is nobody to tell any more.
type DeclineNotifier interface {
	Declined(ctx context.Context, id, reason string) error
}

// Content is what the state machine needs of IPFS.
type Content interface {
	// Get returns the bytes of a small file (the manifest), at most max bytes.
	Get(ctx context.Context, cid string, max int64) ([]byte, error)
	// Fetch makes a CID available as a read-only local directory or file and returns
	// its path.
	Fetch(ctx context.Context, cid string) (string, error)
	// Publish adds a directory, pins and provides it, and returns its root CID.
	Publish(ctx context.Context, dir string) (string, error)
}

// Sealer seals a job's output for JobMarket v2 (node/sealkey.KeyStore): it writes the
// tree dir sealed with the job's key (made on first use, kept for delivery to the drawn
// validators and for release on payment) into the file dst, and returns the sha256 of
// the ciphertext and keccak256(K), hex.
type Sealer interface {
	Seal(ctx context.Context, id, dir, dst string) (resultHash, keyHash string, err error)
}

// Admitter decides whether the node takes a job: policy, price, capacity.
type Admitter interface {
	Admit(p Posting, m *job.Manifest) (ok bool, reasons []string)
}

// ContainerChecker is an Admitter that also re-checks a job when its container is created,
// against the policy in force then (it may have changed since the job was accepted), and
// caps what the container gets.
type ContainerChecker interface {
	CheckContainer(p Posting, m *job.Manifest) (lim ContainerLimits, reasons []string, ok bool)
}

// ContainerLimits is what the policy imposes on a job's container.
type ContainerLimits struct {
	// RunTimeout caps the job's running time; zero leaves the manifest's.
	RunTimeout time.Duration
	// Egress lists the domains the policy lets the job reach. The runtime cannot limit
	// egress to domains yet, so the container still gets no network.
	Egress []string
}

// Runtime runs containers (runtime.Runtime, narrowed).
type Runtime interface {
	Start(ctx context.Context, spec runtime.Spec) (runtime.Handle, error)
	Wait(ctx context.Context, jobID string) (runtime.Result, error)
	// Stop stops a job's container (SIGTERM, a grace period, SIGKILL): a cancelled job's.
	Stop(ctx context.Context, jobID string) error
	Recover(ctx context.Context) ([]runtime.Handle, error)
}

// Idler is the rig's idle workload (runtime/idle): it gives way to a job before the
// job's container starts, and runs again once no job holds it. Both calls are
// idempotent per job.
type Idler interface {
	Hold(ctx context.Context, jobID string) error
	Release(jobID string)
}

func decodeRecord(raw json.RawMessage) (Record, error) {
	var r Record
	if len(raw) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("corrupt job record: %w", err)
	}
	return r, nil
}
