package harness

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/benchmark"
)

// fakeGPURig stands in for the harness image on a 2-GPU rig: it reads the plan the node
// mounted and answers as harness.py --device cuda does, with times from a fixed device
// speed (gpu1 twice as fast as gpu0, fp16/bf16 4× fp32, tf32 2×).
type fakeGPURig struct {
	specs []ContainerSpec
}

func (f *fakeGPURig) RunContainer(_ context.Context, spec ContainerSpec, stdout, _ io.Writer) (int, error) {
	f.specs = append(f.specs, spec)
	emit := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(stdout, "%s\n", b)
	}
	emit(map[string]any{"type": "hello", "protocol": 1, "harness": "gpunode-harness/1", "torch": "2.4.1", "python": "3.11",
		"device": "cuda", "cpu": "EPYC", "cpu_count": 64, "cuda": "12.4", "cudnn": "90100", "nccl": "2.20.5", "driver": "550.54",
		"devices": []map[string]any{
			{"id": "gpu0", "index": 0, "name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-aaaa", "memory_mb": 81920},
			{"id": "gpu1", "index": 1, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-bbbb", "memory_mb": 81920},
		}})
	if slices.Contains(spec.Cmd, "--probe") {
		emit(map[string]any{"type": "done", "results": 0})
		return 0, nil
	}
	// The plan is where the container would read it: the --plan path, through the
	// spec's mounts (read-only: /out belongs to the runtime and starts empty).
	planPath := ""
	if i := slices.Index(spec.Cmd, "--plan"); i >= 0 && i+1 < len(spec.Cmd) {
		planPath = spec.Cmd[i+1]
	}
	host := ""
	for _, m := range spec.Mounts {
		if rel, err := filepath.Rel(m.Target, planPath); err == nil && !strings.HasPrefix(rel, "..") {
			if !m.ReadOnly {
				return 1, fmt.Errorf("the plan's mount %s is writable", m.Target)
			}
			host = filepath.Join(m.Source, rel)
		}
	}
	if host == "" {
		return 1, fmt.Errorf("no mount holds the plan %q (mounts %+v)", planPath, spec.Mounts)
	}
	b, err := os.ReadFile(host)
	if err != nil {
		return 1, err
	}
	var plan benchmark.Plan
	if err := json.Unmarshal(b, &plan); err != nil {
		return 1, err
	}
	n := 0
	speed := map[benchmark.Precision]float64{benchmark.FP32: 10, benchmark.TF32: 20, benchmark.FP16: 40, benchmark.BF16: 40} // TFLOPS on gpu0
	for i, p := range plan.Problems {
		if p.Class == benchmark.ClassAllReduce {
			ms := p.Bytes() / 100e9 * 1e3 // 100 GB/s algbw
			emit(map[string]any{"type": "result", "index": i, "device": "rig", "warmup": plan.Timing.Warmup, "repeats": plan.Timing.MinRepeats, "batch": 1, "min_ms": ms, "median_ms": ms, "max_ms": ms})
			n++
			continue
		}
		for d, dev := range []string{"gpu0", "gpu1"} {
			ms := p.FLOPs() / (speed[p.Precision] * float64(d+1) * 1e12) * 1e3
			emit(map[string]any{"type": "result", "index": i, "device": dev, "warmup": plan.Timing.Warmup, "repeats": plan.Timing.MinRepeats, "batch": 1, "min_ms": ms * 0.9, "median_ms": ms, "max_ms": ms * 1.2})
			n++
		}
	}
	emit(map[string]any{"type": "done", "results": n})
	return 0, nil
}

// TestCUDARig: the CUDA path end to end on a faked 2-GPU harness: all precisions are
// planned, every compute problem is measured per GPU, all-reduce once across both, and
// the scores are per GPU and for the rig.
func TestCUDARig(t *testing.T) {
	rig := &fakeGPURig{}
	b, err := New(Config{Device: "cuda", Image: "gpunode/harness:1", Python: "python3", GPUs: []string{"GPU-aaaa", "GPU-bbbb"}}, rig)
	if err != nil {
		t.Fatal(err)
	}
	var last, total int
	r, err := benchmark.Run(t.Context(), b, benchmark.Quick, func(done, n int, _ benchmark.Result) { last, total = done, n })
	if err != nil {
		t.Fatal(err)
	}
	if last != total || total != len(r.Results) {
		t.Errorf("progress ended at %d/%d for %d results", last, total, len(r.Results))
	}
	if len(r.Hardware.GPUs) != 2 || r.Hardware.Driver != "550.54" || r.Hardware.CUDA != "12.4" || r.Harness != "gpunode-harness/1 torch 2.4.1" {
		t.Errorf("hardware %+v harness %q", r.Hardware, r.Harness)
	}
	for _, s := range rig.specs {
		if !slices.Equal(s.GPUs, []string{"GPU-aaaa", "GPU-bbbb"}) || s.OutputDir == "" || s.Cmd[1] != ScriptPath {
			t.Errorf("container spec %+v", s)
		}
	}
	precs := map[benchmark.Precision]bool{}
	for _, c := range r.Scores.Classes {
		precs[c.Precision] = true
	}
	if len(precs) != 4 {
		t.Errorf("precisions scored: %v", precs)
	}
	// Best precision is 40 TFLOPS on gpu0 and 80 on gpu1 for every class.
	if len(r.Scores.Devices) != 2 || !near(r.Scores.Devices[0].Score, 40) || !near(r.Scores.Devices[1].Score, 80) || !near(r.Scores.Rig, 120) {
		t.Errorf("scores %+v", r.Scores)
	}
	// busbw = algbw·2(n−1)/n = 100 GB/s with n = 2.
	if !near(r.Scores.AllReduceBusBW, 100) {
		t.Errorf("all-reduce busbw %v", r.Scores.AllReduceBusBW)
	}
	_, key := testKey()
	if err := r.Sign(key); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-6*b && d > -1e-6*b }

func testKey() (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, key, _ := ed25519.GenerateKey(nil)
	return pub, key
}
