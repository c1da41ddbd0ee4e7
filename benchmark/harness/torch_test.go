//go:build integration

package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/internal/testenv"
)

// hostPython is Debian's interpreter, which has python3-torch (the python3 on PATH may be
// another one without torch).
const hostPython = "/usr/bin/python3"

func requireTorch(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, hostPython, "-c", "import torch").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import torch (%v: %s): it comes from Debian's python3-torch package; %s", hostPython, err, out, testenv.Setup)
	}
}

// TestTorchCPU runs the real harness on Debian's PyTorch (what CI has), parses its output
// and scores it.
func TestTorchCPU(t *testing.T) {
	requireTorch(t)
	b, err := New(Config{Device: "cpu", Python: hostPython, Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	caps, err := b.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if caps.Workers != 1 || len(caps.Precisions[benchmark.ClassGEMM]) == 0 {
		t.Fatalf("capabilities %+v", caps)
	}
	hw, err := b.Hardware(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hw.CPU == "" || hw.Library == "" || len(hw.GPUs) != 0 {
		t.Errorf("hardware %+v", hw)
	}
	plan := loadPlan(t)
	var progress int
	res, err := b.Run(ctx, plan, func(benchmark.Result) { progress++ })
	if err != nil {
		t.Fatal(err)
	}
	if progress != len(plan.Problems) {
		t.Errorf("%d progress calls for %d problems", progress, len(plan.Problems))
	}
	r, err := benchmark.NewReport(b.Name(), b.Harness(), plan, hw, res, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ran := map[benchmark.Class]bool{}
	for _, x := range r.Results {
		if x.Skipped == "" {
			ran[x.Problem.Class] = true
			if x.TFLOPS <= 0 {
				t.Errorf("%s: no TFLOPS", x.Problem.ID())
			}
		}
	}
	for _, c := range []benchmark.Class{benchmark.ClassGEMM, benchmark.ClassConv, benchmark.ClassRNN} {
		if !ran[c] {
			t.Errorf("no %s problem ran on torch", c)
		}
	}
	if len(r.Scores.Devices) != 1 || r.Scores.Devices[0].Device != "cpu" || r.Scores.Rig <= 0 {
		t.Errorf("scores %+v", r.Scores)
	}
	t.Logf("torch-cpu: %s, rig score %.4f TFLOPS", r.Harness, r.Scores.Rig)
}

// TestTimingArithmetic runs harness.py's timing code (batches of launches lasting at
// least a millisecond, timed with CUDA events) against a fake device and fake events on
// the CPU: per-launch times, batch sizes and repeat counts.
func TestTimingArithmetic(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "harness.py")
	if err := os.WriteFile(script, Script, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, hostPython, "testdata/timing_test.py", script).CombinedOutput()
	if err != nil {
		t.Fatalf("timing test: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Ran 4 tests") {
		t.Errorf("timing test ran other than 4 tests:\n%s", out)
	}
}
