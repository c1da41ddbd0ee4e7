package jobs

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/runtime"
)

// fakeIdle is an idle workload that logs its holds and releases, and what the runtime
// did meanwhile, in one sequence.
type fakeIdle struct {
	mu    sync.Mutex
	log   []string
	holds map[string]bool
}

func (f *fakeIdle) Hold(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.holds[id] {
		f.holds[id] = true
		f.log = append(f.log, "hold "+id)
	}
	return nil
}

func (f *fakeIdle) Release(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holds[id] {
		delete(f.holds, id)
		f.log = append(f.log, "release "+id)
	}
}

func (f *fakeIdle) note(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, s)
}

func (f *fakeIdle) events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// The idle workload is held from acceptance, before the job's container starts, and
// released once it has finished; a failed job releases it too.
func TestIdleHeldAroundTheContainer(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
		end  State
	}{{"paid", 0, Submitted}, {"failed", 3, Failed}} {
		t.Run(tc.name, func(t *testing.T) {
			idle := &fakeIdle{holds: map[string]bool{}}
			r := newRig(t, func(s runtime.Spec) int {
				idle.note("container " + s.JobID)
				if tc.code == 0 {
					return writeCheckpoint(s)
				}
				return tc.code
			})
			r.deps.Idle = idle
			r.start()
			if r.m.NeedsRig() {
				t.Fatal("NeedsRig with no job")
			}
			r.post("1", manifestJSON(nil))
			r.waitState("1", tc.end)
			deadline := time.Now().Add(5 * time.Second)
			for !slices.Contains(idle.events(), "release 1") {
				if time.Now().After(deadline) {
					t.Fatalf("idle workload never released; events %v", idle.events())
				}
				time.Sleep(5 * time.Millisecond)
			}
			want := []string{"hold 1", "container 1", "release 1"}
			if got := idle.events(); !slices.Equal(got, want) {
				t.Fatalf("events %v, want %v", got, want)
			}
			if r.m.NeedsRig() {
				t.Fatal("NeedsRig after the job's container finished")
			}
		})
	}
}

// A job holding the rig keeps the idle workload off even without a hold (after a restart).
func TestNeedsRigWhileRunning(t *testing.T) {
	r := newRig(t, writeCheckpoint)
	release := make(chan struct{})
	r.rt.release = release
	r.start()
	r.post("1", manifestJSON(nil))
	r.waitState("1", Running)
	if !r.m.NeedsRig() {
		t.Fatal("NeedsRig false while a job runs")
	}
	close(release)
	r.waitState("1", Submitted)
	if r.m.NeedsRig() {
		t.Fatal("NeedsRig true once the job was submitted")
	}
}
