// Package pooljobs is a pool coordinator's job flow: the coordinator faces the market for
// its pool. A job posted on chain is evaluated as a provider would (manifest, terms,
// policy) and against the pool's live members; accepted on chain with the pool's
// account; dispatched to the member rigs (one per node of a multi-rig job); watched
// through the members' heartbeats, and reassigned when a member is gone, stops running
// it, fails or declines it; its rank-0 output is fetched and checked against its tree
// hash before it is submitted, once; its outcome is followed, and the pay of a completed
// job is booked for the members that did it (Booker).
//
// Every state is written to the store (under "pool-<job id>") before its side effect;
// the chain's Accept and Submit are idempotent, so a coordinator killed at any point
// resumes its jobs and never submits one twice.
package pooljobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
)

// State is where a pool job is.
type State string

// The states, in the order a successful job passes them.
const (
	Evaluating  State = "evaluating"  // posted on chain; not evaluated yet
	Accepting   State = "accepting"   // accept transaction under way
	Dispatching State = "dispatching" // the pool's; finding members for its ranks
	Running     State = "running"     // every rank dispatched; waiting for the results
	Verifying   State = "verifying"   // all ranks done; rank 0's output being checked
	Submitting  State = "submitting"  // result transaction under way
	Submitted   State = "submitted"   // result on chain; validators at work
	Paid        State = "paid"        // validators confirmed it; the split is booked

	Declined State = "declined" // not taken: policy, terms, not enough members
	Failed   State = "failed"   // taken but not done; given back on chain
	Rejected State = "rejected" // validators scored it below the threshold
	Expired  State = "expired"  // a deadline passed on chain
	Lost     State = "lost"     // another provider accepted it first
)

// Terminal tells whether a job in state s is finished.
func (s State) Terminal() bool {
	switch s {
	case Paid, Declined, Failed, Rejected, Expired, Lost:
		return true
	}
	return false
}

// Prefix names the flow's records in the node's store: "pool-7" is job 7.
const Prefix = "pool-"

// StoreID is a job's record ID in the store.
func StoreID(jobID string) string { return Prefix + jobID }

// IsStoreID tells whether a record of the store is one of the flow's.
func IsStoreID(id string) bool {
	return strings.HasPrefix(id, Prefix) && jobs.IsJobID(strings.TrimPrefix(id, Prefix))
}

// Assignment is one rank of a job given to a member.
type Assignment struct {
	Rank int `json:"rank"`
	// Member is the member's peer ID, Account its payout address, Score the score it is
	// paid by (its verified score when it has one, else its benchmark's).
	Member  string  `json:"member"`
	Account string  `json:"account"`
	Score   float64 `json:"score"`
	// DispatchSeq is the dispatch's sequence number, which the member's result echoes.
	DispatchSeq  uint64    `json:"dispatch_seq"`
	DispatchedAt time.Time `json:"dispatched_at"`
	// Status is the member's result (done, failed, declined); "" while it runs.
	Status      string    `json:"status,omitempty"`
	CID         string    `json:"cid,omitempty"`
	Hash        string    `json:"hash,omitempty"`
	WallSeconds float64   `json:"wall_seconds,omitempty"`
	GPUs        int       `json:"gpus,omitempty"`
	ResultAt    time.Time `json:"result_at,omitzero"`
	// Reason is the member's reason for a failed or declined result, or, once the job
	// was taken from the member, why it was.
	Reason  string    `json:"reason,omitempty"`
	TakenAt time.Time `json:"taken_at,omitzero"`
}

// Record is everything the coordinator keeps about a pool job.
type Record struct {
	Posting  jobs.Posting  `json:"posting"`
	Manifest *job.Manifest `json:"manifest,omitempty"`
	// Nodes is how many member rigs the job runs on.
	Nodes int `json:"nodes,omitempty"`
	// Reason says why a job was declined or failed, or what went wrong last.
	Reason     string    `json:"reason,omitempty"`
	AcceptTx   string    `json:"accept_tx,omitempty"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
	// Assignments are the members running the job now, by rank; Past the members it
	// was taken from, with the reason.
	Assignments   []Assignment `json:"assignments,omitempty"`
	Past          []Assignment `json:"past,omitempty"`
	Reassignments int          `json:"reassignments,omitempty"`
	OutputCID     string       `json:"output_cid,omitempty"`
	OutputHash    string       `json:"output_hash,omitempty"`
	SubmitTx      string       `json:"submit_tx,omitempty"`
	// Refund says how a failed job was given back on chain, once it has been.
	Refund string `json:"refund,omitempty"`
	// Booked is set once the pay split was handed to the Booker.
	Booked bool `json:"booked,omitempty"`
	// Attempts counts retries of the current step.
	Attempts int `json:"attempts,omitempty"`
}

// Job is a pool job and its record, as listed.
type Job struct {
	ID        string    `json:"id"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Record
}

// Pool is the coordinator's side of the pool protocols (pool.Coordinator).
type Pool interface {
	Members() []pool.MemberInfo
	Dispatch(ctx context.Context, member peer.ID, d pool.Dispatch) (pool.Ack, error)
	// Cancel takes a job back from a member, which stops running it.
	Cancel(ctx context.Context, member peer.ID, jobID, reason string) (pool.Ack, error)
}

// Content is what the flow needs of IPFS: the manifest's bytes, and a member's output
// as a local directory to check its tree hash.
type Content interface {
	Get(ctx context.Context, cid string, max int64) ([]byte, error)
	Fetch(ctx context.Context, cid string) (string, error)
}

// Booker books the split of a completed job's reward among the members that did it
// (node/poolpay). It must be idempotent per job: after a crash the flow books again.
type Booker interface {
	Book(ctx context.Context, jobID string, rewardWei *big.Int, work []pool.Work) error
}

// Config tunes the flow.
type Config struct {
	// HeartbeatBound is pool.heartbeat_bound: a member silent for longer is gone, and a
	// member whose heartbeats do not list a job dispatched to it for longer lost it.
	HeartbeatBound time.Duration
	// Tick is how often dispatched jobs are checked; 0: a quarter of the bound, at most 5 s.
	Tick time.Duration
	// ManifestTimeout bounds fetching a manifest, FetchTimeout a member's output.
	ManifestTimeout time.Duration
	FetchTimeout    time.Duration
	// OutcomePoll is how often the chain is asked about a submitted job.
	OutcomePoll time.Duration
	// MinAttestWindow is the shortest attest window a job may give its validators.
	MinAttestWindow time.Duration
	// RetryBase, RetryMax and MaxAttempts bound the retries of a failing step.
	RetryBase, RetryMax time.Duration
	MaxAttempts         int
}

func (c Config) withDefaults() Config {
	if c.Tick <= 0 {
		c.Tick = min(max(c.HeartbeatBound/4, 10*time.Millisecond), 5*time.Second)
	}
	def := jobs.Default()
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.ManifestTimeout, time.Duration(def.ManifestTimeout)},
		{&c.FetchTimeout, time.Duration(def.UploadTimeout)},
		{&c.OutcomePoll, time.Duration(def.OutcomePoll)},
		{&c.MinAttestWindow, time.Duration(def.MinAttestWindow)},
		{&c.RetryBase, time.Duration(def.RetryBase)},
		{&c.RetryMax, time.Duration(def.RetryMax)},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.MaxAttempts < 1 {
		c.MaxAttempts = def.MaxAttempts
	}
	return c
}

// Deps are what the flow drives.
type Deps struct {
	Store *store.Store
	// Chain accepts, submits and gives back with the pool's account (provider.Chain over
	// Postings).
	Chain   jobs.Chain
	Content Content
	Pool    Pool
	// Admitter is the coordinator's policy; nil admits everything.
	Admitter jobs.Admitter
	// Booker books completed jobs' splits; nil logs them only.
	Booker Booker
	// Registerer takes the flow's metrics; nil: not registered.
	Registerer prometheus.Registerer
}

// Flow drives the pool's jobs.
type Flow struct {
	cfg  Config
	d    Deps
	log  *slog.Logger
	now  func() time.Time
	jobs *prometheus.CounterVec
	// reassigned counts jobs taken from members, by reason.
	reassigned *prometheus.CounterVec

	posted chan jobs.Posting

	mu      sync.Mutex
	ctx     context.Context
	started time.Time
	running map[string]bool
	wake    map[string]chan struct{}
	// listed is when a member's heartbeat last listed a job dispatched to it, by
	// "job/member".
	listed map[string]time.Time
	wg     sync.WaitGroup
}

// New returns the flow; Run starts it. Hand it to the pool coordinator as its result
// handler (pool.Coordinator.SetResultHandler(f.Result)).
func New(cfg Config, d Deps, log *slog.Logger) (*Flow, error) {
	if cfg.HeartbeatBound <= 0 {
		return nil, errors.New("pool jobs: the heartbeat bound must be positive")
	}
	if d.Store == nil || d.Chain == nil || d.Content == nil || d.Pool == nil {
		return nil, errors.New("pool jobs: store, chain, content and pool are required")
	}
	f := &Flow{
		cfg: cfg.withDefaults(), d: d, log: log.With("component", "pooljobs"), now: time.Now,
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_pool_jobs_total",
			Help: "Pool jobs the coordinator finished, by result (paid, declined, failed, rejected, expired, lost).",
		}, []string{"result"}),
		reassigned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpunode_pool_reassignments_total",
			Help: "Pool jobs taken from their members and dispatched again, by reason (gone, not_running, failed, declined, bad_output).",
		}, []string{"reason"}),
		posted:  make(chan jobs.Posting, 64),
		running: map[string]bool{},
		wake:    map[string]chan struct{}{},
		listed:  map[string]time.Time{},
	}
	if d.Registerer != nil {
		for _, c := range []prometheus.Collector{f.jobs, f.reassigned} {
			if err := d.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("pool jobs metrics: %w", err)
			}
		}
	}
	return f, nil
}

// SetBooker sets what books completed jobs' splits (node/poolpay's ledger), when it is
// built after the flow; nil logs the splits only.
func (f *Flow) SetBooker(b Booker) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.d.Booker = b
}

func (f *Flow) booker() Booker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.d.Booker
}

// Describe implements prometheus.Collector: the flow's metrics, for a caller that
// registers it itself (Deps.Registerer nil).
func (f *Flow) Describe(ch chan<- *prometheus.Desc) {
	f.jobs.Describe(ch)
	f.reassigned.Describe(ch)
}

// Collect implements prometheus.Collector.
func (f *Flow) Collect(ch chan<- prometheus.Metric) {
	f.jobs.Collect(ch)
	f.reassigned.Collect(ch)
}

// SealedReason is why a pool declines JobMarketV2 jobs.
const SealedReason = "pools do not take sealed JobMarketV2 jobs yet"

// Posted hands the flow a job posted on chain. A job it already knows is ignored, so a
// replayed event does nothing.
func (f *Flow) Posted(ctx context.Context, p jobs.Posting) error {
	if !jobs.IsJobID(p.ID) {
		return fmt.Errorf("pool job %q: invalid id, want the job's on-chain id", p.ID)
	}
	select {
	case f.posted <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run resumes every unfinished job from its stored state, then takes new postings until
// ctx ends.
func (f *Flow) Run(ctx context.Context) error {
	f.mu.Lock()
	f.ctx, f.started = ctx, f.now()
	f.mu.Unlock()
	open, err := f.d.Store.List(func(j store.Job) bool {
		if !IsStoreID(j.ID) {
			return false
		}
		if State(j.State) == Failed {
			rec, err := decode(j)
			return err == nil && owesRefund(rec)
		}
		return !State(j.State).Terminal()
	})
	if err != nil {
		return fmt.Errorf("pool jobs: %w", err)
	}
	for _, j := range open {
		f.log.Info("resuming pool job", "job_id", strings.TrimPrefix(j.ID, Prefix), "state", j.State)
		f.spawn(j.ID)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.reconcile(ctx) // members running jobs that are not theirs are told to stop
	}()
	for {
		select {
		case <-ctx.Done():
			f.wg.Wait()
			return nil
		case p := <-f.posted:
			f.create(p)
		}
	}
}

func (f *Flow) create(p jobs.Posting) {
	id := StoreID(p.ID)
	state, rec, note := Evaluating, Record{Posting: p}, "posted by "+p.Sponsor+" via "+p.Source
	if p.Sealed {
		state, rec.Reason, note = Declined, SealedReason, SealedReason
	}
	err := f.d.Store.Create(store.Job{ID: id, State: string(state), Data: mustJSON(rec)}, note)
	if errors.Is(err, store.ErrExists) {
		return
	}
	if err != nil {
		f.log.Error("store pool job", "job_id", p.ID, "err", err)
		return
	}
	if state == Declined {
		f.jobs.WithLabelValues(string(Declined)).Inc()
		f.log.Info("pool job declined", "job_id", p.ID, "reason", SealedReason)
		return
	}
	f.log.Info("pool job posted", "job_id", p.ID, "sponsor", p.Sponsor, "reward_wei", p.RewardWei)
	f.spawn(id)
}

// Get returns one job by its on-chain ID.
func (f *Flow) Get(jobID string) (Job, error) { return get(f.d.Store, jobID) }

func get(st *store.Store, jobID string) (Job, error) {
	j, err := st.Get(StoreID(jobID))
	if err != nil {
		return Job{}, err
	}
	return toJob(j)
}

// List returns every pool job, newest first.
func (f *Flow) List() ([]Job, error) {
	all, err := f.d.Store.List(func(j store.Job) bool { return IsStoreID(j.ID) })
	if err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(all))
	for _, j := range all {
		jj, err := toJob(j)
		if err != nil {
			return nil, err
		}
		out = append(out, jj)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].CreatedAt.After(out[k].CreatedAt) })
	return out, nil
}

// Postings reads the postings of the flow's jobs for the pool's chain adapter
// (provider.Jobs): accepting a job sends the terms it was posted with.
type Postings struct{ Store *store.Store }

// Get returns a job by its on-chain ID, as the job machine's records would.
func (p Postings) Get(id string) (jobs.Job, error) {
	j, err := get(p.Store, id)
	if err != nil {
		return jobs.Job{}, err
	}
	return jobs.Job{ID: id, State: jobs.State(j.State), CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt,
		Record: jobs.Record{Posting: j.Posting, Manifest: j.Manifest, AcceptTx: j.AcceptTx, SubmitTx: j.SubmitTx,
			OutputCID: j.OutputCID, OutputHash: j.OutputHash, Reason: j.Reason, Refund: j.Refund}}, nil
}
