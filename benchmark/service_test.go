package benchmark

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeBackend reports time proportional to each problem's work: 1 TFLOPS for compute,
// 1 GB/s algbw for all-reduce. block, if set, holds Run until closed.
type fakeBackend struct {
	block chan struct{}
	calls int
	mu    sync.Mutex
}

func (f *fakeBackend) Name() string    { return "fake" }
func (f *fakeBackend) Harness() string { return "fake/1" }
func (f *fakeBackend) Capabilities(context.Context) (Capabilities, error) {
	return Capabilities{Precisions: map[Class][]Precision{ClassGEMM: {FP32, FP16}, ClassConv: {FP32}, ClassRNN: {FP32}, ClassAllReduce: {FP32}}, Workers: 2}, nil
}
func (f *fakeBackend) Hardware(context.Context) (Hardware, error) {
	return Hardware{OS: "linux", CPU: "fake", Cores: 2, GPUs: []GPU{{Index: 0, Name: "Fake GPU", UUID: "GPU-0"}}}, nil
}
func (f *fakeBackend) Run(ctx context.Context, plan Plan, progress func(Result)) ([]Result, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var out []Result
	for _, p := range plan.Problems {
		ms := p.FLOPs() / 1e12 * 1e3
		dev := "gpu0"
		if p.Class == ClassAllReduce {
			ms, dev = p.Bytes()/1e9*1e3, "rig"
		}
		if p.Precision == FP16 {
			ms /= 4
		}
		r := Result{Problem: p, Device: dev, Warmup: plan.Timing.Warmup, Repeats: 3, MinMS: ms, MedianMS: ms, MaxMS: ms}
		out = append(out, r)
		progress(r)
	}
	return out, nil
}

func newTestService(t *testing.T, dir string, b Backend) *Service {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := Default()
	cfg.StateDir = dir
	cfg.Backend = "fake"
	s, err := New(cfg, testkit.Discard(), key, b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServiceBenchmarkKeepsSignedReport(t *testing.T) {
	dir := t.TempDir()
	s := newTestService(t, dir, &fakeBackend{})
	var last, total int
	r, err := s.Benchmark(t.Context(), Quick, "fake", func(done, n int, _ Result) { last, total = done, n })
	if err != nil {
		t.Fatal(err)
	}
	if last != total || total == 0 {
		t.Errorf("progress ended at %d/%d", last, total)
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	// gemm fp16 runs 4 TFLOPS, the best precision; conv and rnn 1: device score ∛4.
	if len(r.Scores.Devices) != 1 || !approx(r.Scores.Rig, 1.5874010519681994) {
		t.Errorf("scores %+v", r.Scores)
	}
	kept, _ := os.ReadFile(filepath.Join(dir, "last-report.json"))
	if sum := s.Summary(); sum == nil || sum.RigScore != r.Scores.Rig || sum.SHA256 != fmt.Sprintf("%x", sha256.Sum256(kept)) {
		t.Errorf("summary %+v does not describe the kept report", sum)
	}
	// A running service picks up a report another process (`gpunode bench`) kept.
	other := newTestService(t, dir, &fakeBackend{})
	r2, err := other.Benchmark(t.Context(), Quick, "fake", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Coarse file system clocks could give both writes one modification time.
	later := time.Now().Add(time.Minute)
	os.Chtimes(filepath.Join(dir, "last-report.json"), later, later)
	if got := s.Last(); got == nil || !bytes.Equal(got.Signature, r2.Signature) {
		t.Fatal("the running service did not pick up the newer kept report")
	}
	r = r2
	kept, _ = os.ReadFile(filepath.Join(dir, "last-report.json"))
	// A restarted service finds the report again; a tampered one is not trusted.
	if got := newTestService(t, dir, &fakeBackend{}).Last(); got == nil || got.Scores.Rig != r.Scores.Rig {
		t.Fatalf("report not kept across restart: %+v", got)
	}
	path := filepath.Join(dir, "last-report.json")
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), `"cores": 2`, `"cores": 3`, 1)), 0o600)
	if got := newTestService(t, dir, &fakeBackend{}).Last(); got != nil {
		t.Fatal("tampered kept report was trusted")
	}
	if _, err := s.Benchmark(t.Context(), Quick, "nope", nil); err == nil || !strings.Contains(err.Error(), "fake") {
		t.Errorf("unknown backend: %v", err)
	}
}

// TestServiceOneRunAtATime: while a run blocks in its backend a second is refused with
// ErrBusy (the control API answers it as a conflict), and the finished run's report is
// kept and verifies.
func TestServiceOneRunAtATime(t *testing.T) {
	fb := &fakeBackend{block: make(chan struct{})}
	s := newTestService(t, t.TempDir(), fb)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if s.Last() != nil {
		t.Fatal("a report before any run")
	}
	type answer struct {
		r   *Report
		err error
	}
	first := make(chan answer, 1)
	go func() {
		r, err := s.Benchmark(ctx, Quick, "fake", nil)
		first <- answer{r, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		fb.mu.Lock()
		started := fb.calls > 0
		fb.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first run never reached its backend")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Benchmark(ctx, Quick, "fake", nil); !errors.Is(err, ErrBusy) {
		t.Errorf("second run: %v, want ErrBusy", err)
	}
	close(fb.block)
	a := <-first
	if a.err != nil {
		t.Fatal(a.err)
	}
	last := s.Last()
	if last == nil || !bytes.Equal(last.Signature, a.r.Signature) {
		t.Fatalf("last report %+v, want the run's", last)
	}
	if err := last.Verify(); err != nil {
		t.Fatalf("kept report: %v", err)
	}
	if _, err := s.Benchmark(ctx, Profile("slow"), "fake", nil); err == nil {
		t.Error("unknown profile accepted")
	}
}

func TestServiceMetrics(t *testing.T) {
	s := newTestService(t, t.TempDir(), &fakeBackend{})
	reg := prometheus.NewPedanticRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("before a report: %d metrics, %v", n, err)
	}
	r, err := s.Benchmark(t.Context(), Quick, "fake", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := func(dev string, c Class, p Precision) string {
		for _, cs := range r.Scores.Classes {
			if cs.Device == dev && cs.Class == c && cs.Precision == p {
				return strconv.FormatFloat(cs.Value, 'g', -1, 64)
			}
		}
		t.Fatalf("no %s %s %s score", dev, c, p)
		return ""
	}
	score := strconv.FormatFloat(r.Scores.Rig, 'g', -1, 64)
	if !approx(r.Scores.Rig, 1.5874010519681994) {
		t.Errorf("rig score %v", r.Scores.Rig)
	}
	want := `
# HELP gpunode_benchmark_score Benchmark score (TFLOPS) per device; gpu="rig" is the rig's total, its DL hashrate.
# TYPE gpunode_benchmark_score gauge
gpunode_benchmark_score{gpu="gpu0"} ` + score + `
gpunode_benchmark_score{gpu="rig"} ` + score + `
# HELP gpunode_benchmark_tflops Geometric mean TFLOPS of the last benchmark per problem class, precision and device.
# TYPE gpunode_benchmark_tflops gauge
gpunode_benchmark_tflops{class="conv",gpu="gpu0",precision="fp32"} ` + f("gpu0", ClassConv, FP32) + `
gpunode_benchmark_tflops{class="gemm",gpu="gpu0",precision="fp16"} ` + f("gpu0", ClassGEMM, FP16) + `
gpunode_benchmark_tflops{class="gemm",gpu="gpu0",precision="fp32"} ` + f("gpu0", ClassGEMM, FP32) + `
gpunode_benchmark_tflops{class="rnn",gpu="gpu0",precision="fp32"} ` + f("gpu0", ClassRNN, FP32) + `
# HELP gpunode_benchmark_allreduce_busbw_gigabytes_per_second Geometric mean all-reduce bus bandwidth of the last benchmark.
# TYPE gpunode_benchmark_allreduce_busbw_gigabytes_per_second gauge
gpunode_benchmark_allreduce_busbw_gigabytes_per_second ` + strconv.FormatFloat(r.Scores.AllReduceBusBW, 'g', -1, 64) + `
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gpunode_benchmark_score", "gpunode_benchmark_tflops", "gpunode_benchmark_allreduce_busbw_gigabytes_per_second"); err != nil {
		t.Error(err)
	}
	if errs := (Config{}).Validate(); len(errs) != 4 {
		t.Errorf("empty config: %v", errs)
	}
}
