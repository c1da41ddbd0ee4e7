package pooljobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/pool"
	"github.com/gpunode/gpunode/node/store"
)

// refusal is a result the flow does not take, and why.
type refusal struct{ reason string }

func (r refusal) Error() string { return r.reason }

// errKnown: the result is recorded already (a member sending it again after a lost ack).
var errKnown = errors.New("result already recorded")

// Result is the pool coordinator's result handler (pool.ResultHandler): it records a
// result from the member a rank of the job is assigned to now, for the dispatch it
// answers, and refuses any other — from a stranger, or from a member the job was taken
// from ("job reassigned to another member"). Rank 0's output is checked later, before
// anything is submitted.
func (f *Flow) Result(_ context.Context, from peer.ID, r pool.Result) (bool, string) {
	id := StoreID(r.JobID)
	for range 3 { // the job may move on between reading its state and recording
		j, err := f.d.Store.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			return false, fmt.Sprintf("job %s is not one of this pool's jobs", r.JobID)
		}
		if err != nil {
			return false, "coordinator store: " + err.Error()
		}
		state := State(j.State)
		at := f.now()
		// take's refusal aborts the transaction: the record stays as it was.
		_, err = f.d.Store.Advance(id, string(state), string(state), fmt.Sprintf("rank %d %s by %s", r.Rank, r.Status, from), func(sj *store.Job) error {
			rec, err := decode(*sj)
			if err != nil {
				return err
			}
			if err := take(&rec, state, from.String(), r, at); err != nil {
				return err
			}
			sj.Data = mustJSON(rec)
			return nil
		})
		var ref refusal
		switch {
		case err == nil:
			f.log.Info("pool job result", "job_id", r.JobID, "member", from, "rank", r.Rank, "status", r.Status, "cid", r.CID)
			f.poke(id)
			return true, ""
		case errors.As(err, &ref):
			f.log.Warn("pool job result refused", "job_id", r.JobID, "member", from, "reason", ref.reason)
			return false, ref.reason
		case errors.Is(err, errKnown):
			return true, "already recorded"
		case errors.Is(err, store.ErrConflict):
			continue
		default:
			return false, "coordinator store: " + err.Error()
		}
	}
	return false, "the job is changing state; send the result again"
}

// take records r from member in rec, or says why not.
func take(rec *Record, state State, member string, r pool.Result, at time.Time) error {
	idx := -1
	for i, a := range rec.Assignments {
		if a.Member == member && a.Rank == r.Rank {
			idx = i
		}
	}
	if idx < 0 {
		for _, a := range rec.Past {
			if a.Member == member {
				return refusal{"job reassigned to another member: " + a.Reason}
			}
		}
		for _, a := range rec.Assignments {
			if a.Member == member {
				return refusal{fmt.Sprintf("rank %d of the job is not yours (yours is %d)", r.Rank, a.Rank)}
			}
		}
		return refusal{fmt.Sprintf("job %s was not dispatched to you", r.JobID)}
	}
	// The dispatch it answers is not checked: a member holds a job once (the flow never
	// gives a job back to a member it took it from), and a coordinator that crashed
	// between a dispatch and its record sends the job again to a member whose machine
	// keeps the first dispatch's number.
	a := &rec.Assignments[idx]
	if a.Status != "" {
		if a.Status == r.Status && a.CID == r.CID && a.Hash == r.Hash {
			return errKnown
		}
		return refusal{fmt.Sprintf("a %s result of yours is already recorded", a.Status)}
	}
	if state != Dispatching && state != Running {
		return refusal{fmt.Sprintf("the job is %s", state)}
	}
	a.Status, a.CID, a.Hash, a.WallSeconds, a.GPUs, a.Reason, a.ResultAt = r.Status, r.CID, r.Hash, r.WallSeconds, r.GPUs, r.Reason, at
	return nil
}
