package harness

import (
	"context"
	"os/exec"
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
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

// TestHarnessCrash: a harness that dies mid-run gives an error, not a partial score.
func TestHarnessCrash(t *testing.T) {
	b, err := New(Config{Device: "cpu", Python: "/bin/sh"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// /bin/sh runs harness.py as a shell script: garbage out, non-zero exit.
	if _, err := b.Capabilities(context.Background()); err == nil {
		t.Fatal("a harness that is not one was accepted")
	}
}
