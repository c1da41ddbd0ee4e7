package pooljobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node/store"
)

// told is when a member was last told to stop a job, and the heartbeat that listed it.
type told struct{ at, seen time.Time }

// reconcile compares what the live members' heartbeats say they run with what the pool
// gave them, every tick until ctx ends: a member that lists a job that is not its now —
// taken from it (reassigned), ended by the pool, or never dispatched to it — is told to
// stop it. This is what stops a job on a member that was killed, lost the job meanwhile
// and resumed it after its restart, or that the cancel sent when the job was taken did
// not reach. A member is told again at most once a heartbeat bound, while it lists the job.
func (f *Flow) reconcile(ctx context.Context) {
	t := time.NewTicker(f.cfg.Tick)
	defer t.Stop()
	sent := map[string]told{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.reconcileOnce(ctx, sent)
	}
}

func (f *Flow) reconcileOnce(ctx context.Context, sent map[string]told) {
	now := f.now()
	bound := f.cfg.HeartbeatBound
	for k, s := range sent {
		if now.Sub(s.at) > 10*bound {
			delete(sent, k)
		}
	}
	for _, m := range f.d.Pool.Members() {
		if !m.Alive {
			continue
		}
		for _, jobID := range m.Running {
			reason, stop := f.notYours(jobID, m.Member, m.LastSeen)
			if !stop {
				continue
			}
			key := jobID + "/" + m.Member
			if s, ok := sent[key]; ok && (!m.LastSeen.After(s.seen) || now.Sub(s.at) < bound) {
				continue
			}
			pid, err := peer.Decode(m.Member)
			if err != nil {
				continue
			}
			sent[key] = told{at: now, seen: m.LastSeen}
			log := f.log.With("job_id", jobID, "member", m.Member)
			log.Warn("a member runs a pool job that is not its; telling it to stop", "reason", reason)
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				ack, err := f.d.Pool.Cancel(cctx, pid, jobID, reason)
				switch {
				case err != nil:
					log.Info("could not tell the member to stop the job", "err", err)
				case !ack.Accepted:
					log.Info("member did not stop the job", "reason", ack.Reason)
				}
			}()
		}
	}
}

// notYours says whether member, whose heartbeat received at seen lists jobID, should
// not be running it, and why. A heartbeat from before the job was taken from the member
// or ended lists it rightly: the member is told only by later ones (the cancel sent when
// the job was taken tells it at once).
func (f *Flow) notYours(jobID, member string, seen time.Time) (string, bool) {
	j, err := f.d.Store.Get(StoreID(jobID))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("job %s is not one of this pool's jobs", jobID), true
	}
	if err != nil {
		return "", false
	}
	rec, err := decode(j)
	if err != nil {
		return "", false
	}
	state := State(j.State)
	for _, a := range rec.Assignments {
		if a.Member != member {
			continue
		}
		if state.Terminal() && a.Status == "" && seen.After(j.UpdatedAt) {
			why := rec.Reason
			if why == "" {
				why = "the job is " + string(state)
			}
			return "the pool ended the job: " + why, true
		}
		return "", false
	}
	for i := len(rec.Past) - 1; i >= 0; i-- {
		if a := rec.Past[i]; a.Member == member {
			if !seen.After(later(a.TakenAt, a.ResultAt)) {
				return "", false
			}
			return "job reassigned to another member: " + a.Reason, true
		}
	}
	if state == Dispatching {
		return "", false // the dispatch to it may be under way, not recorded yet
	}
	return fmt.Sprintf("job %s was not dispatched to you", jobID), true
}
