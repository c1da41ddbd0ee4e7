package jobs

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/runtime"
)

// containerPolicy admits every offer, then answers the container check as told.
type containerPolicy struct {
	lim     ContainerLimits
	ok      bool
	reasons []string
}

func (c containerPolicy) Admit(Posting, *job.Manifest) (bool, []string) { return true, nil }

func (c containerPolicy) CheckContainer(Posting, *job.Manifest) (ContainerLimits, []string, bool) {
	return c.lim, c.reasons, c.ok
}

// TestContainerCheck: the policy is enforced again when the container is created — a
// refusal fails the job before any container starts; limits cap the container's spec.
func TestContainerCheck(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		r := newRig(t, writeCheckpoint)
		r.deps.Admitter = containerPolicy{reasons: []string{"local limits.max_duration: job asks for 1h0m0s, limit 10m0s"}}
		r.start()
		r.post("5", manifestJSON(nil))
		j := r.waitState("5", Failed)
		if !strings.Contains(j.Reason, "the policy in force refuses the container: local limits.max_duration") {
			t.Errorf("reason %q", j.Reason)
		}
		if len(r.rt.starts) != 0 {
			t.Errorf("container started: %v", r.rt.starts)
		}
	})
	t.Run("capped", func(t *testing.T) {
		var mu sync.Mutex
		var got time.Duration
		r := newRig(t, func(s runtime.Spec) int {
			mu.Lock()
			got = s.RunTimeout
			mu.Unlock()
			return writeCheckpoint(s)
		})
		r.deps.Admitter = containerPolicy{ok: true, lim: ContainerLimits{RunTimeout: 7 * time.Second}}
		r.start()
		r.post("6", manifestJSON(nil))
		r.waitState("6", Submitted)
		mu.Lock()
		defer mu.Unlock()
		if got != 7*time.Second {
			t.Errorf("container run timeout %v, want the policy's 7s", got)
		}
	})
}
