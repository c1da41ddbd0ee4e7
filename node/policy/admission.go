package policy

import (
	"fmt"
	"sync"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

// Admission states, as shown in status, metrics and the capacity record.
const (
	// StateActive: the node takes jobs its policy allows.
	StateActive = "active"
	// StateCordoned: the node takes no new jobs until uncordoned; running jobs go on.
	StateCordoned = "cordoned"
	// StateDraining: like cordoned, and the operator waits for running jobs to finish.
	StateDraining = "draining"
	// StateDrained: draining and no job is running any more; safe to stop the node.
	StateDrained = "drained"
)

// States lists every admission state.
var States = []string{StateActive, StateCordoned, StateDraining, StateDrained}

type admission struct {
	mu       sync.Mutex
	cordoned bool
	draining bool
	reason   string
	since    time.Time
	running  map[string]bool
	count    func() int // the daemon's count of running jobs, if it keeps one
}

func (a *admission) runningJobs() int {
	if a.count != nil {
		return a.count()
	}
	return len(a.running)
}

func (a *admission) state() string {
	switch {
	case a.draining && a.runningJobs() == 0:
		return StateDrained
	case a.draining:
		return StateDraining
	case a.cordoned:
		return StateCordoned
	}
	return StateActive
}

func (a *admission) check() (Check, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state()
	c := Check{Layer: "node", Rule: "admission", Kind: KindAdmission, Pass: s == StateActive}
	if c.Pass {
		c.Detail = "node is taking jobs"
	} else {
		c.Detail = fmt.Sprintf("node is %s since %s", s, a.since.UTC().Format(time.RFC3339))
		if a.reason != "" {
			c.Detail += ": " + a.reason
		}
	}
	return c, c.Pass
}

// AdmissionStatus is whether the node takes new jobs, and why not.
type AdmissionStatus struct {
	// State is one of States.
	State string `json:"state"`
	// Reason is what the operator gave when cordoning or draining.
	Reason string `json:"reason,omitempty"`
	// Since is when the state was set.
	Since time.Time `json:"since"`
	// RunningJobs counts the jobs the node is still running.
	RunningJobs int `json:"running_jobs"`
}

// API is the status as the control API sends it.
func (s AdmissionStatus) API() api.AdmissionStatus {
	return api.AdmissionStatus{State: s.State, Reason: s.Reason, Since: s.Since.UTC(), RunningJobs: s.RunningJobs}
}

// TakingJobs reports whether the node accepts new offers; the capacity record carries it.
func (s AdmissionStatus) TakingJobs() bool { return s.State == StateActive }

// Admission returns the node's admission state.
func (h *Holder) Admission() AdmissionStatus {
	a := &h.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	return AdmissionStatus{State: a.state(), Reason: a.reason, Since: a.since, RunningJobs: a.runningJobs()}
}

func (h *Holder) setAdmission(f func(a *admission)) AdmissionStatus {
	a := &h.adm
	a.mu.Lock()
	before := a.state()
	f(a)
	after := a.state()
	if before != after {
		a.since = time.Now()
	}
	reason := a.reason
	a.mu.Unlock()
	if before != after {
		h.log.Info("admission changed", "from", before, "to", after, "reason", reason)
	}
	return h.Admission()
}

// Cordon stops the node taking new jobs; running jobs go on.
func (h *Holder) Cordon(reason string) AdmissionStatus {
	return h.setAdmission(func(a *admission) { a.cordoned, a.reason = true, reason })
}

// Drain stops the node taking new jobs and lets the running ones finish; the state
// becomes drained when the last one ends.
func (h *Holder) Drain(reason string) AdmissionStatus {
	return h.setAdmission(func(a *admission) { a.cordoned, a.draining, a.reason = true, true, reason })
}

// Uncordon lets the node take jobs again, ending a cordon or a drain.
func (h *Holder) Uncordon() AdmissionStatus {
	return h.setAdmission(func(a *admission) { a.cordoned, a.draining, a.reason = false, false, "" })
}

// CountRunning makes the holder ask count for the number of jobs the node has taken and
// not finished, instead of being told with JobStarted and JobFinished. count must be cheap
// and must not call back into the holder.
func (h *Holder) CountRunning(count func() int) {
	h.setAdmission(func(a *admission) { a.count = count })
}

// JobStarted tells the holder a job is running, from acceptance to its end.
func (h *Holder) JobStarted(id string) {
	h.setAdmission(func(a *admission) {
		if a.running == nil {
			a.running = map[string]bool{}
		}
		a.running[id] = true
	})
}

// JobFinished tells the holder a job ended, however it ended.
func (h *Holder) JobFinished(id string) {
	h.setAdmission(func(a *admission) { delete(a.running, id) })
}
