package poolmember

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

	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
)

// Machine is what the Accepter needs of the member's job machine (jobs.Machine).
type Machine interface {
	Discover(ctx context.Context, p jobs.Posting) error
	Get(id string) (jobs.Job, error)
	List() ([]jobs.Job, error)
	// Cancel stops a job the pool took back; Redispatched records a repeated dispatch
	// of a job under way, which its result then answers.
	Cancel(ctx context.Context, id, reason string) error
	Redispatched(id string, seq uint64) error
}

// pendingFor is how long an acked dispatch counts as running before the machine has
// recorded it (it queues new jobs).
const pendingFor = 2 * time.Minute

// Accepter answers the coordinator's dispatches (pool.Accepter): a dispatch that holds up
// becomes a job of the member's machine, which then evaluates it like any job and may
// still decline it (the coordinator hears of it through Chain.Declined).
type Accepter struct {
	m      Machine
	market Market
	log    *slog.Logger
	now    func() time.Time

	mu sync.Mutex
	// pending are the jobs acked and not yet in the machine's store, by when.
	pending map[string]time.Time
}

// NewAccepter returns the accepter over the member's machine m. market, when not nil,
// is read to check that the pool accepted the job on chain and to give the member's
// policy the job's sponsor and reward.
func NewAccepter(m Machine, market Market, log *slog.Logger) *Accepter {
	return &Accepter{m: m, market: market, log: log.With("component", "poolmember"), now: time.Now, pending: map[string]time.Time{}}
}

// Accept implements pool.Accepter.
func (a *Accepter) Accept(ctx context.Context, d pool.Dispatch) (bool, string) {
	p, reason := a.posting(ctx, d)
	if reason != "" {
		a.log.Warn("dispatch refused", "job_id", d.JobID, "reason", reason)
		return false, reason
	}
	if p.ID == "" {
		return true, "" // already this member's
	}
	// Counted as running from the ack on: the coordinator reassigns a job its member's
	// heartbeats do not list.
	a.mu.Lock()
	a.pending[p.ID] = a.now()
	a.mu.Unlock()
	if err := a.m.Discover(ctx, p); err != nil {
		a.mu.Lock()
		delete(a.pending, p.ID)
		a.mu.Unlock()
		return false, fmt.Sprintf("job %s: %v", d.JobID, err)
	}
	a.log.Info("job dispatched by the pool", "job_id", p.ID, "dispatch", d.Seq, "cluster", p.Cluster != nil)
	return true, ""
}

// posting checks a dispatch and makes it the machine's posting. It returns a refusal's
// reason, or a zero posting and no reason when the machine has the job already.
func (a *Accepter) posting(ctx context.Context, d pool.Dispatch) (jobs.Posting, string) {
	if err := d.Validate(); err != nil {
		return jobs.Posting{}, err.Error()
	}
	if !jobs.IsJobID(d.JobID) || strings.HasPrefix(d.JobID, "v2-") {
		return jobs.Posting{}, fmt.Sprintf("job id %q: want a JobMarket job's on-chain id", d.JobID)
	}
	if dl := time.Unix(d.Deadline, 0); !dl.After(a.now()) {
		return jobs.Posting{}, fmt.Sprintf("job %s: its deadline %s has passed", d.JobID, dl.UTC().Format(time.RFC3339))
	}
	if c := d.Cluster; c != nil {
		if errs := c.WithDefaults().Validate(); len(errs) > 0 {
			return jobs.Posting{}, fmt.Sprintf("job %s: cluster: %v", d.JobID, errors.Join(errs...))
		}
	}
	switch j, err := a.m.Get(d.JobID); {
	case err == nil && j.Posting.Source != jobs.SourcePool:
		return jobs.Posting{}, fmt.Sprintf("job %s: this rig has it already, from %s", d.JobID, j.Posting.Source)
	case err == nil && j.State.Terminal():
		return jobs.Posting{}, fmt.Sprintf("job %s: this member has ended it already (%s: %s)", d.JobID, j.State, j.Reason)
	case err == nil:
		// A repeated dispatch of a job under way: its result answers this dispatch, the
		// one the coordinator records as the latest.
		if err := a.m.Redispatched(d.JobID, d.Seq); err != nil {
			return jobs.Posting{}, fmt.Sprintf("job %s: a repeated dispatch: %v", d.JobID, err)
		}
		return jobs.Posting{}, ""
	case !errors.Is(err, store.ErrNotFound):
		return jobs.Posting{}, fmt.Sprintf("job %s: %v", d.JobID, err)
	}
	p := jobs.Posting{
		ID:           d.JobID,
		ManifestCID:  d.ManifestCID,
		ManifestHash: strings.ToLower(strings.TrimPrefix(d.ManifestHash, "0x")),
		Deadline:     time.Unix(d.Deadline, 0).UTC(),
		Source:       jobs.SourcePool,
		Cluster:      d.Cluster,
		PoolDispatch: d.Seq,
	}
	if a.market == nil {
		return p, ""
	}
	n, ok := new(big.Int).SetString(d.JobID, 10)
	if !ok {
		return jobs.Posting{}, fmt.Sprintf("job id %q: not a number", d.JobID)
	}
	v, err := a.market.Job(ctx, n)
	if err != nil {
		return jobs.Posting{}, fmt.Sprintf("job %s: read it on chain: %v", d.JobID, err)
	}
	if st := market.JobState(v.State); st != market.StateAccepted {
		return jobs.Posting{}, fmt.Sprintf("job %s is %s on chain: the pool has not accepted it, nothing to run", d.JobID, st)
	}
	// The member's policy judges the job's sponsor and its whole reward (the member's
	// share of it is smaller: the pool's fee, and the split among the job's members).
	p.Sponsor = v.Sponsor.Hex()
	if v.Reward != nil {
		p.RewardWei = v.Reward.String()
	}
	p.Token = v.Token.Hex()
	return p, ""
}

// Running lists the pool's jobs the member holds, from the ack until it handed the
// result back: what its heartbeats report (pool.Heartbeat.Running), at most 64.
func (a *Accepter) Running() []string {
	list, err := a.m.List()
	if err != nil {
		a.log.Warn("list jobs for the heartbeat", "err", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, j := range list {
		if j.Posting.Source != jobs.SourcePool {
			continue
		}
		seen[j.ID] = true
		if !j.State.Terminal() && j.State != jobs.Submitted {
			out = append(out, j.ID)
		}
	}
	now := a.now()
	a.mu.Lock()
	for id, at := range a.pending {
		switch {
		case seen[id] || now.Sub(at) > pendingFor:
			delete(a.pending, id)
		default:
			out = append(out, id)
		}
	}
	a.mu.Unlock()
	sort.Strings(out)
	if len(out) > 64 {
		out = out[:64]
	}
	return out
}

// TakenBackPrefix starts the reason of a job the pool took back.
const TakenBackPrefix = "taken back by the pool: "

// Cancel is the member's pool.CancelHandler: the coordinator took a job back (it
// reassigned it, gave it back, or does not know it), so the member's machine stops it.
// A job the member does not have is nothing to stop; one acked a moment ago and not yet
// in the machine is waited for, as long as the coordinator waits.
func (a *Accepter) Cancel(ctx context.Context, c pool.Cancel) (bool, string) {
	var j jobs.Job
	for {
		var err error
		j, err = a.m.Get(c.JobID)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrNotFound) {
			return false, fmt.Sprintf("job %s: %v", c.JobID, err)
		}
		a.mu.Lock()
		_, pending := a.pending[c.JobID]
		a.mu.Unlock()
		if !pending {
			return true, fmt.Sprintf("job %s is not on this member: nothing to stop", c.JobID)
		}
		select {
		case <-ctx.Done():
			return false, fmt.Sprintf("job %s is still being taken in; send the cancel again", c.JobID)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if j.Posting.Source != jobs.SourcePool {
		return false, fmt.Sprintf("job %s came to this rig from %s, not from the pool", c.JobID, j.Posting.Source)
	}
	if err := a.m.Cancel(ctx, c.JobID, TakenBackPrefix+c.Reason); err != nil {
		a.log.Warn("pool cancel not taken", "job_id", c.JobID, "err", err)
		return false, err.Error()
	}
	a.log.Info("job taken back by the pool", "job_id", c.JobID, "state", j.State, "reason", c.Reason)
	return true, ""
}
