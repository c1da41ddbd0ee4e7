package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime"
)

// ErrTooLate: a job's result is being handed in or was; it can no longer be cancelled.
var ErrTooLate = errors.New("too late to cancel")

// cancelWait bounds waiting for a stopped container's result.
const cancelWait = 2 * time.Minute

// Cancel stops a job that should not run on (its pool took it back). The cancel is
// recorded first, so it holds across a restart: a job not taken yet (discovered) ends
// Declined; one taken (accepted, preparing, running, uploading) has its container stopped,
// its GPUs and idle-workload hold released, and ends Failed with reason — then, like any
// failed job, it is given back through the chain adapter. A job being accepted is
// stopped once the acceptance is through. Cancel returns once the cancel is recorded;
// the job stops shortly after. It is idempotent, and leaves a finished job alone; a job
// whose result is being submitted, or was, is not cancelled (ErrTooLate).
func (m *Machine) Cancel(ctx context.Context, id, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return errors.New("cancel: a reason is required")
	}
	if !IsJobID(id) {
		return fmt.Errorf("job %q: %w", id, store.ErrNotFound)
	}
	for range 5 { // the job may move on between reading its state and recording
		if err := ctx.Err(); err != nil {
			return err
		}
		j, err := m.deps.Store.Get(id)
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		state := State(j.State)
		switch {
		case state.Terminal():
			return nil
		case state == Submitting, state == Submitted:
			return fmt.Errorf("job %s is %s: its result is handed in: %w", id, state, ErrTooLate)
		}
		_, err = m.deps.Store.Advance(id, string(state), string(state), "cancel: "+reason, func(sj *store.Job) error {
			r, err := decodeRecord(sj.Data)
			if err != nil {
				return err
			}
			if r.Cancelled != "" {
				return errAlreadyCancelled
			}
			r.Cancelled = reason
			sj.Data = mustJSON(r)
			return nil
		})
		switch {
		case errors.Is(err, store.ErrConflict):
			continue
		case errors.Is(err, errAlreadyCancelled):
		case err != nil:
			return fmt.Errorf("job %s: record the cancel: %w", id, err)
		default:
			m.log.Info("job cancelled", "job_id", id, "state", state, "reason", reason)
		}
		m.interrupt(id)
		return nil
	}
	return fmt.Errorf("job %s is changing state; cancel it again", id)
}

var errAlreadyCancelled = errors.New("already cancelled")

// cancelNow tells whether a cancelled job in state s stops now: a job being accepted
// finishes its acceptance first (a transaction may be under way).
func cancelNow(s State) bool {
	switch s {
	case Discovered, Accepted, Preparing, Running, Uploading:
		return true
	}
	return false
}

// stepContext is the context of a job's current step, which Cancel interrupts; done
// forgets it.
func (m *Machine) stepContext(ctx context.Context, id string) (context.Context, func()) {
	sctx, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	m.steps[id] = cancel
	m.mu.Unlock()
	return sctx, func() {
		m.mu.Lock()
		delete(m.steps, id)
		m.mu.Unlock()
		cancel()
	}
}

// interrupt ends the current step of job id, if it is being driven.
func (m *Machine) interrupt(id string) {
	m.mu.Lock()
	cancel := m.steps[id]
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// finishCancel ends a cancelled job: its container stopped, its GPUs and idle hold
// released.
func (m *Machine) finishCancel(ctx context.Context, id string, state State, rec Record, log *slog.Logger) (State, string, func(*Record), error) {
	reason := rec.Cancelled
	if state == Discovered {
		os.RemoveAll(filepath.Join(m.deps.WorkDir, id)) // what a dry run left
		return Declined, "cancelled: " + reason, func(r *Record) { r.Reason = reason }, nil
	}
	var res *runtime.Result
	if state == Preparing || state == Running {
		got, err := m.stopContainer(ctx, id)
		if err != nil {
			if rec.Attempts+1 < m.cfg.MaxAttempts {
				return "", "", nil, err
			}
			log.Error("cancelled job's container not confirmed stopped", "err", err)
			reason += " (its container could not be confirmed stopped: " + err.Error() + ")"
		}
		res = got
	}
	m.alloc.release(id)
	m.releaseIdle(id)
	return Failed, "cancelled: " + reason, func(r *Record) {
		r.Reason = reason
		if res != nil {
			r.Result = res
		}
	}, nil
}

// stopContainer stops a job's container and waits for its result; a job whose container
// never started has none.
func (m *Machine) stopContainer(ctx context.Context, id string) (*runtime.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, cancelWait)
	defer cancel()
	if err := m.deps.Runtime.Stop(ctx, id); err != nil {
		if errors.Is(err, runtime.ErrUnknownJob) {
			return nil, nil
		}
		return nil, fmt.Errorf("stop the container: %w", err)
	}
	res, err := m.deps.Runtime.Wait(ctx, id)
	switch {
	case errors.Is(err, runtime.ErrUnknownJob):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("wait for the stopped container: %w", err)
	}
	return &res, nil
}

// Redispatched records that the pool dispatched job id to this rig again, as its
// dispatch seq: the job's results answer the latest dispatch the rig acked. Only a pool
// job under way, before its result is handed in, takes it.
func (m *Machine) Redispatched(id string, seq uint64) error {
	if !IsJobID(id) {
		return fmt.Errorf("job %q: %w", id, store.ErrNotFound)
	}
	for range 5 {
		j, err := m.deps.Store.Get(id)
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		state := State(j.State)
		switch {
		case state.Terminal():
			return fmt.Errorf("job %s has ended (%s)", id, state)
		case state == Submitting, state == Submitted:
			return fmt.Errorf("job %s is %s: its result answers the dispatch it was handed with", id, state)
		}
		_, err = m.deps.Store.Advance(id, string(state), string(state), fmt.Sprintf("dispatched again by the pool (dispatch %d)", seq), func(sj *store.Job) error {
			r, err := decodeRecord(sj.Data)
			if err != nil {
				return err
			}
			if r.Posting.Source != SourcePool {
				return fmt.Errorf("job %s came from %q, not from a pool", id, r.Posting.Source)
			}
			if r.Cancelled != "" {
				return fmt.Errorf("job %s was cancelled: %s", id, r.Cancelled)
			}
			r.Posting.PoolDispatch = seq
			sj.Data = mustJSON(r)
			return nil
		})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
	return fmt.Errorf("job %s is changing state; dispatch it again", id)
}
