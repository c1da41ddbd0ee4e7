package node

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/cpu"
	"github.com/gpunode/gpunode/benchmark/harness"
	"github.com/gpunode/gpunode/node/benchrig"
	"github.com/gpunode/gpunode/node/jobs"
)

// openBenchmark builds the benchmark service: the CPU backend always, and the PyTorch
// harness on the GPUs, run as a job of the container runtime, when the rig has real
// GPUs. Its report lives in <data_dir>/benchmark, where `gpunode bench` keeps it too,
// signed by the node's identity key (its peer ID).
func openBenchmark(cfg Config, log *slog.Logger, gpus GPUs, jobs harness.Jobs) (*benchmark.Service, *harness.Backend, error) {
	key, err := benchrig.Key(cfg.Layout())
	if err != nil {
		return nil, nil, fmt.Errorf("benchmark: %w", err)
	}
	bcfg := benchrig.Config(cfg.Layout())
	// At start only when the report is missing or stale ([benchmark] on_start), and
	// only once no job runs (SetIdle); `gpunode bench` or POST /v1/benchmark any time.
	bcfg.OnStart = cfg.Benchmark.OnStart
	cb, err := cpu.New(cpu.Default())
	if err != nil {
		return nil, nil, err
	}
	backends := []benchmark.Backend{cb}
	var hb *harness.Backend
	if gpus != nil && !gpus.Simulated() && len(gpus.Allocatable()) > 0 && jobs != nil {
		hb, err = benchrig.Harness(cfg.Layout(), harnessBase(cfg), gpus.Allocatable(), jobs)
		if err != nil {
			return nil, nil, err
		}
		backends = append(backends, hb)
		bcfg.Backend = hb.Name()
	}
	svc, err := benchmark.New(bcfg, log, key, backends...)
	return svc, hb, err
}

// harnessBase is the harness's default configuration on the configured base image.
func harnessBase(cfg Config) harness.Config {
	hcfg := harness.Default()
	if cfg.GPU.HarnessBaseImage != "" {
		hcfg.BaseImage = cfg.GPU.HarnessBaseImage
	}
	return hcfg
}

// harnessConfig is the daemon's harness on the given GPUs.
func harnessConfig(cfg Config, gpus []string) harness.Config {
	return benchrig.HarnessConfig(cfg.Layout(), harnessBase(cfg), gpus)
}

// benchmarkHolder is the allocator's name for the benchmark's hold on the GPUs.
const benchmarkHolder = "benchmark"

// allocatorGPUs reserves every GPU for a benchmark run from the job machine's allocator.
type allocatorGPUs struct{ m *jobs.Machine }

func (a allocatorGPUs) Reserve(context.Context) ([]string, func(), error) {
	gpus, err := a.m.ReserveAll(benchmarkHolder)
	if err != nil {
		return nil, nil, err
	}
	return gpus, func() { a.m.Release(benchmarkHolder) }, nil
}

// Benchmark is what the node needs of the benchmark service.
type Benchmark interface {
	Run(ctx context.Context) error
	// The control API serves the last report and runs.
	BenchmarkBackend
	Register(reg prometheus.Registerer) error
	Summary() *benchmark.Summary
	// Measured is closed once the benchmark at start is settled (done, not needed, or
	// given up): the first registration waits for it, so it carries the report.
	Measured() <-chan struct{}
	// NewReports receives a value after each new report: the node registers it.
	NewReports() <-chan struct{}
}

// publishReport adds the node's signed benchmark report to IPFS (pinned, provided) and
// returns its CID and sha256; nothing when no benchmark ran yet.
func (n *Node) publishReport(ctx context.Context) (string, common.Hash, error) {
	if n.deps.Benchmark == nil {
		return "", common.Hash{}, nil
	}
	sum := n.deps.Benchmark.Summary()
	if sum == nil || n.ipfs == nil {
		return "", common.Hash{}, nil
	}
	res, err := n.ipfs.Add(ctx, n.cfg.Layout().BenchmarkReport(), "benchmark-report.json")
	if err != nil {
		return "", common.Hash{}, err
	}
	return res.CID, common.HexToHash(sum.SHA256), nil
}
