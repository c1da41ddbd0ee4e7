// Package poolmember is a pool member's side of running the pool's jobs. The pool's
// coordinator faces the market: it accepts a job on chain with the pool's account and
// dispatches it to members. A member runs it in its own job machine — its own policy,
// dry run, hardening, GPU allocation and restarts — whose chain adapter (Chain) hands the
// outcome back to the coordinator instead of the contract; the Accepter turns the
// coordinator's dispatch into a job of that machine.
package poolmember

import (
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/market"
	"github.com/gpunode/gpunode/node/pool"
)

// Sender hands a result to the coordinator and returns its signed answer
// (pool.Member.SendResult).
type Sender interface {
	SendResult(ctx context.Context, r pool.Result) (pool.Ack, error)
}

// Market reads a job's record on chain (node/market.Market).
type Market interface {
	Job(ctx context.Context, id *big.Int) (bindings.JobMarketJob, error)
}

// Jobs reads the jobs the member's machine keeps (jobs.Records).
type Jobs interface {
	Get(id string) (jobs.Job, error)
}

// Chain is a pool member's jobs.Chain: accepting costs nothing (the coordinator accepted
// on chain), submitting and giving back send a signed Result to the coordinator, and the
// outcome is read from the chain whoever the provider is (the pool's account).
type Chain struct {
	coordinator peer.ID
	send        Sender
	market      Market
	jobs        Jobs
	log         *slog.Logger
}

var (
	_ jobs.Chain           = (*Chain)(nil)
	_ jobs.DeclineNotifier = (*Chain)(nil)
)

// NewChain returns the member machine's chain adapter: results go to coordinator through
// s, outcomes are read from m, and j holds the jobs' records (rank, dispatch, run time).
func NewChain(coordinator peer.ID, s Sender, m Market, j Jobs, log *slog.Logger) *Chain {
	return &Chain{coordinator: coordinator, send: s, market: m, jobs: j, log: log.With("component", "poolmember")}
}

// Accept implements jobs.Chain: the pool accepted the job on chain before dispatching it.
func (c *Chain) Accept(_ context.Context, id string) (string, error) {
	return "dispatched by pool " + c.coordinator.String(), nil
}

// Submit implements jobs.Chain: it hands the checkpoint (rank 0; other ranks none) to
// the coordinator, which submits it on chain. A refused result (the job was reassigned,
// …) is permanent: the coordinator no longer wants it from this member.
func (c *Chain) Submit(ctx context.Context, id, cid, hash string) (string, error) {
	r, err := c.result(id, pool.ResultDone, "")
	if err != nil {
		return "", err
	}
	r.CID, r.Hash = cid, hash
	ack, err := c.send.SendResult(ctx, r)
	if err != nil {
		return "", fmt.Errorf("hand job %s's result to pool %s: %w", id, c.coordinator, err)
	}
	if !ack.Accepted {
		return "", fmt.Errorf("%w: pool %s refused job %s's result: %s", jobs.ErrPermanent, c.coordinator, id, ack.Reason)
	}
	c.log.Info("result handed to the pool", "job_id", id, "cid", cid, "rank", r.Rank)
	return "handed to pool " + c.coordinator.String(), nil
}

// Abandon implements jobs.Chain: the job goes back to the coordinator, which gives it to
// another member or back on chain. A coordinator that refuses it has taken it back
// already, which is as good.
func (c *Chain) Abandon(ctx context.Context, id, reason string) (string, error) {
	r, err := c.result(id, pool.ResultFailed, reason)
	if err != nil {
		return "", err
	}
	ack, err := c.send.SendResult(ctx, r)
	if err != nil {
		return "", fmt.Errorf("give job %s back to pool %s: %w", id, c.coordinator, err)
	}
	if !ack.Accepted {
		return "the pool had taken it back already: " + ack.Reason, nil
	}
	return "given back to the pool", nil
}

// Declined implements jobs.DeclineNotifier: the coordinator hears at once that the member
// will not run a job it acked, and reassigns it.
func (c *Chain) Declined(ctx context.Context, id, reason string) error {
	r, err := c.result(id, pool.ResultDeclined, reason)
	if err != nil {
		return err
	}
	ack, err := c.send.SendResult(ctx, r)
	if err != nil {
		return fmt.Errorf("tell pool %s job %s was declined: %w", c.coordinator, id, err)
	}
	if !ack.Accepted {
		return fmt.Errorf("%w: pool %s refused the decline of job %s: %s", jobs.ErrPermanent, c.coordinator, id, ack.Reason)
	}
	return nil
}

// Outcome implements jobs.Chain: what the chain says of the job, whoever its provider is
// (the pool's account).
func (c *Chain) Outcome(ctx context.Context, id string) (jobs.Outcome, error) {
	n, err := chainID(id)
	if err != nil {
		return jobs.OutcomePending, err
	}
	v, err := c.market.Job(ctx, n)
	if err != nil {
		return jobs.OutcomePending, err
	}
	switch market.JobState(v.State) {
	case market.StateCompleted:
		return jobs.OutcomeCompleted, nil
	case market.StateRejected:
		return jobs.OutcomeRejected, nil
	case market.StateCancelled, market.StateExpired:
		return jobs.OutcomeExpired, nil
	}
	return jobs.OutcomePending, nil
}

// result is the Result of job id as its record stands.
func (c *Chain) result(id, status, reason string) (pool.Result, error) {
	j, err := c.jobs.Get(id)
	if err != nil {
		return pool.Result{}, fmt.Errorf("job %s: %w", id, err)
	}
	if j.Posting.Source != jobs.SourcePool {
		return pool.Result{}, fmt.Errorf("%w: job %s came from %q, not from the pool", jobs.ErrPermanent, id, j.Posting.Source)
	}
	r := pool.Result{JobID: id, DispatchSeq: j.Posting.PoolDispatch, Status: status, GPUs: len(j.GPUs)}
	if cl := j.Posting.Cluster; cl != nil {
		r.Rank = cl.NodeRank
	}
	if j.Result != nil {
		r.WallSeconds = max(j.Result.WallTime.Seconds(), 0)
	}
	if status != pool.ResultDone {
		if reason == "" {
			reason = "no reason recorded"
		}
		r.Reason = truncate(reason, 512)
	}
	return r, nil
}

func chainID(id string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(id, 10)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("%w: job %q is not a chain job id", jobs.ErrPermanent, id)
	}
	return n, nil
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
