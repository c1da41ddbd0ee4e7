package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/p2p"
)

// unitBackend measures every problem at 1 TFLOPS (1 GB/s algbw for all-reduce).
type unitBackend struct{}

func (unitBackend) Name() string    { return "unit" }
func (unitBackend) Harness() string { return "unit/1" }
func (unitBackend) Capabilities(context.Context) (benchmark.Capabilities, error) {
	fp32 := []benchmark.Precision{benchmark.FP32}
	return benchmark.Capabilities{Precisions: map[benchmark.Class][]benchmark.Precision{
		benchmark.ClassGEMM: fp32, benchmark.ClassConv: fp32, benchmark.ClassRNN: fp32}, Workers: 1}, nil
}
func (unitBackend) Hardware(context.Context) (benchmark.Hardware, error) {
	return benchmark.Hardware{OS: "linux", CPU: "unit", Cores: 1}, nil
}
func (unitBackend) Run(_ context.Context, plan benchmark.Plan, progress func(benchmark.Result)) ([]benchmark.Result, error) {
	var out []benchmark.Result
	for _, p := range plan.Problems {
		ms := p.FLOPs() / 1e12 * 1e3
		r := benchmark.Result{Problem: p, Device: "cpu", Warmup: plan.Timing.Warmup, Repeats: 3, MinMS: ms, MedianMS: ms, MaxMS: ms}
		out = append(out, r)
		progress(r)
	}
	return out, nil
}

// TestBenchmarkWired: the daemon serves the benchmark routes, shows the last report in
// its status and exports it as metrics.
func TestBenchmarkWired(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := benchmark.Default()
	cfg.StateDir, cfg.Backend, cfg.OnStart = t.TempDir(), "unit", false
	svc, err := benchmark.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), key, unitBackend{})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := startNode(t, Deps{Runtime: &fakeRuntime{}, Benchmark: svc})
	if n.Status().Benchmark != nil {
		t.Fatal("status shows a benchmark before any ran")
	}
	c := api.NewClient(n.cfg.API.Socket)
	ctx := t.Context()
	waitSocket(t, n.cfg.API.Socket)
	if _, err := c.RunBenchmark(ctx, api.BenchmarkRequest{}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Benchmark == nil || st.Benchmark.RigScore < 0.99 || st.Benchmark.RigScore > 1.01 || st.Benchmark.Backend != "unit" {
		t.Fatalf("status benchmark %+v", st.Benchmark)
	}
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "gpunode_benchmark_score"
	}
	if !found {
		t.Error("gpunode_benchmark_score not exported")
	}
}

func TestOpenBenchmarkCPUOnly(t *testing.T) {
	cfg := Default()
	cfg.DataDir = t.TempDir()
	svc, hb, err := openBenchmark(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hb != nil {
		t.Error("a GPU harness on a CPU-only node")
	}
	if svc.Last() != nil {
		t.Error("a report out of nowhere")
	}
	// Reports are signed by the node's identity, created on first use.
	if _, err := os.Stat(p2p.IdentityPath(cfg.DataDir)); err != nil {
		t.Errorf("signing key: %v", err)
	}
}

// waitSocket waits (bounded) until the node's control API answers.
func waitSocket(t *testing.T, socket string) {
	t.Helper()
	c := api.NewClient(socket)
	var err error
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, err = c.Status(t.Context())
		return err == nil
	}, "control API on %s: %v", socket, testkit.Lazy(func() string { return fmt.Sprint(err) }))
}
