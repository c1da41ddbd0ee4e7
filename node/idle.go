package node

import (
	"errors"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/runtime/idle"
)

// openIdle builds the operator's idle workload over the container runtime. Without an
// idle image it is inert, and only its metrics (all zero) show.
func (n *Node) openIdle() error {
	var rt idle.Runtime
	if n.deps.Runtime != nil {
		rt = n.deps.Runtime
	}
	if n.cfg.Idle.Enabled() && rt == nil {
		return errors.New("idle: an idle image is configured but the node has no container runtime to run it")
	}
	w, err := idle.New(n.cfg.Idle, idle.Deps{
		Runtime:    rt,
		GPUs:       jobGPUs(n.deps.GPUs),
		Dir:        n.cfg.Layout().Idle(),
		Busy:       n.jobNeedsRig,
		Registerer: n.reg,
	}, n.log)
	if err != nil {
		return err
	}
	n.idle = w
	return nil
}

// jobNeedsRig keeps the idle workload off while a job holds the rig, from before the job
// machine has resumed it after a restart.
func (n *Node) jobNeedsRig() bool {
	return n.work != nil && n.work.machine.NeedsRig()
}

func (n *Node) idleStatus() *api.IdleStatus {
	if n.idle == nil {
		return nil
	}
	st := n.idle.Status()
	if !st.Enabled {
		return nil
	}
	return &api.IdleStatus{
		Image: st.Image, Running: st.Running, Run: st.Run, StartedAt: st.StartedAt, HeldBy: st.HeldBy,
		Starts: st.Starts, LastStopSeconds: st.LastStop.Seconds(), LastError: st.LastError,
	}
}
