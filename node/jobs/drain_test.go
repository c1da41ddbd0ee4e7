package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/policy"
)

// holderAdmitter puts the real policy holder in front of the machine, as the daemon does.
type holderAdmitter struct{ h *policy.Holder }

func (a holderAdmitter) Admit(p Posting, m *job.Manifest) (bool, []string) {
	d := a.h.Offer(policy.Request{Manifest: m, Sponsor: p.Sponsor, Node: policy.NodeState{Now: time.Now()}})
	return d.Allow, d.Reasons()
}

// TestDrainFinishesRunningJob: a draining node finishes the job it runs and declines a new
// offer; once the job is done the node is drained.
func TestDrainFinishesRunningJob(t *testing.T) {
	h, err := policy.New(policy.Default(), quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, writeCheckpoint)
	r.rt.release = make(chan struct{})
	r.deps.Admitter = holderAdmitter{h}
	r.start()
	h.CountRunning(func() int {
		list, _ := r.m.List()
		n := 0
		for _, j := range list {
			switch j.State {
			case Accepting, Accepted, Preparing, Running, Uploading, Submitting:
				n++
			}
		}
		return n
	})
	r.post("1", manifestJSON(nil))
	r.waitState("1", Running)

	if a := h.Drain("kernel update"); a.State != policy.StateDraining || a.RunningJobs != 1 {
		t.Fatalf("Drain: %+v", a)
	}
	r.post("2", manifestJSON(nil))
	j := r.waitState("2", Declined)
	if !strings.Contains(j.Reason, "node is draining") || !strings.Contains(j.Reason, "kernel update") {
		t.Errorf("declined offer reason %q", j.Reason)
	}

	close(r.rt.release)
	r.waitState("1", Submitted)
	if a := h.Admission(); a.State != policy.StateDrained {
		t.Errorf("after the running job finished: %+v, want drained", a)
	}
	if r.rt.starts["1"] != 1 || r.rt.starts["2"] != 0 || r.chain.accepts != 1 {
		t.Errorf("starts %v accepts %d: want only job 1 started and accepted", r.rt.starts, r.chain.accepts)
	}
}
