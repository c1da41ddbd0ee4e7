package jobs

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/store"
)

type fakeSweeper struct {
	before time.Time
	inUse  func(string) bool
}

func (f *fakeSweeper) SweepInputs(_ context.Context, before time.Time, inUse func(string) bool) (int, error) {
	f.before, f.inUse = before, inUse
	return 0, nil
}

// TestSweep: after jobs.retention, a finished job's folder goes; a running job's
// folder and its inputs stay, whatever their age, and so does a failed job still owed
// its refund.
func TestSweep(t *testing.T) {
	r := newRig(t, nil)
	r.deps.Store = r.store
	m := New(testConfig(), r.deps, quiet)
	for id, st := range map[string]State{"1": Paid, "2": Running, "3": Rejected} {
		rec := Record{Posting: Posting{ID: id}, Manifest: &job.Manifest{Inputs: []job.Input{{CID: "bafy-input-" + id}}}}
		if err := r.store.Create(store.Job{ID: id, State: string(st), Data: mustJSON(rec)}, "test"); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(r.deps.WorkDir, id, "out"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	sw := &fakeSweeper{}
	if removed, err := m.Sweep(ctx, time.Now(), sw); err != nil || len(removed) != 0 {
		t.Fatalf("sweep within the retention: removed %v, %v", removed, err)
	}
	later := time.Now().Add(time.Duration(m.cfg.Retention) + time.Hour)
	removed, err := m.Sweep(ctx, later, sw)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if !slices.Equal(removed, []string{"1", "3"}) {
		t.Errorf("removed %v, want the finished jobs 1 and 3", removed)
	}
	if _, err := os.Stat(filepath.Join(r.deps.WorkDir, "2", "out")); err != nil {
		t.Errorf("the running job's folder: %v", err)
	}
	if !sw.inUse("bafy-input-2") || sw.inUse("bafy-input-1") {
		t.Error("inputs in use: want the running job's, not the paid job's")
	}
	if !sw.before.Equal(later.Add(-time.Duration(m.cfg.Retention))) {
		t.Errorf("inputs swept before %v", sw.before)
	}
}
