//go:build gpu

package rigcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/harness"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/node/metrics"
	"github.com/gpunode/gpunode/runtime/docker"
	"github.com/gpunode/gpunode/runtime/gpu"
)

// TestRig checks the node's GPU paths against this rig's real driver, toolkit and
// engine, and prints the report (also written to $GPUNODE_RIG_REPORT when set). Run it
// with `make gpu-check` on the rig, as root or in the docker group.
func TestRig(t *testing.T) {
	var r Report
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	defer func() {
		r.WriteTo(os.Stdout)
		if p := os.Getenv("GPUNODE_RIG_REPORT"); p != "" {
			f, err := os.Create(p)
			if err == nil {
				r.WriteTo(f)
				f.Close()
			}
		}
		if r.Problems() > 0 {
			t.Errorf("%d problems (see the report)", r.Problems())
		}
	}()

	s := r.Section("nvml")
	inv, err := gpu.Open(gpu.Default(), log)
	if err != nil {
		s.Problem("open", "%v", err)
		return
	}
	defer inv.Close()
	s.Line("driver", "%s (cuda %s)", inv.Driver(), inv.CUDA())
	for _, d := range inv.Devices() {
		line := fmt.Sprintf("%s %s cc %s, %d MiB, bus %s, mig %v, ecc %v", d.UUID, d.Name, d.ComputeCapability, d.MemoryBytes>>20, d.PCIBusID, d.MIG, d.ECC)
		for _, in := range d.Instances {
			line += fmt.Sprintf(", instance %s %s (gi %d ci %d)", in.UUID, in.Name, in.GPUInstance, in.ComputeInstance)
		}
		if d.Healthy {
			s.Line(fmt.Sprintf("gpu %d", d.Index), "%s", line)
		} else {
			s.Problem(fmt.Sprintf("gpu %d", d.Index), "%s: out of service: %s", line, d.Problem)
		}
	}
	s.Line("allocatable", "%v", inv.Allocatable())
	getters(&r)
	sampling(&r, inv)
	health(&r, inv, log)
	metricsPerGPU(&r, inv)
	rt := toolkit(&r, inv)
	if rt != nil {
		defer rt.Close()
		harnessRun(t, &r, inv, rt)
	}
	if p := os.Getenv("GPUNODE_RIG_LOG"); p != "" {
		os.WriteFile(p, logs.Bytes(), 0o644)
	}
}

// getters calls every NVML getter the node uses, on every GPU, and reports each return
// code: what this driver and card support.
func getters(r *Report) {
	s := r.Section("nvml getters")
	lib := nvml.New()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		s.Problem("init", "%v", ret)
		return
	}
	defer lib.Shutdown()
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		s.Problem("device count", "%v", ret)
		return
	}
	for i := 0; i < n; i++ {
		h, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			s.Problem(fmt.Sprintf("gpu %d handle", i), "%v", ret)
			continue
		}
		calls := []struct {
			name string
			call func() nvml.Return
		}{
			{"GetUUID", func() nvml.Return { _, r := h.GetUUID(); return r }},
			{"GetName", func() nvml.Return { _, r := h.GetName(); return r }},
			{"GetPciInfo", func() nvml.Return { _, r := h.GetPciInfo(); return r }},
			{"GetMemoryInfo", func() nvml.Return { _, r := h.GetMemoryInfo(); return r }},
			{"GetCudaComputeCapability", func() nvml.Return { _, _, r := h.GetCudaComputeCapability(); return r }},
			{"GetMigMode", func() nvml.Return { _, _, r := h.GetMigMode(); return r }},
			{"GetMaxMigDeviceCount", func() nvml.Return { _, r := h.GetMaxMigDeviceCount(); return r }},
			{"GetEccMode", func() nvml.Return { _, _, r := h.GetEccMode(); return r }},
			{"GetUtilizationRates", func() nvml.Return { _, r := h.GetUtilizationRates(); return r }},
			{"GetPowerUsage", func() nvml.Return { _, r := h.GetPowerUsage(); return r }},
			{"GetTemperature", func() nvml.Return { _, r := h.GetTemperature(nvml.TEMPERATURE_GPU); return r }},
			{"GetClockInfo(SM)", func() nvml.Return { _, r := h.GetClockInfo(nvml.CLOCK_SM); return r }},
			{"GetClockInfo(MEM)", func() nvml.Return { _, r := h.GetClockInfo(nvml.CLOCK_MEM); return r }},
			{"GetTotalEccErrors", func() nvml.Return {
				_, r := h.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
				return r
			}},
		}
		var codes []string
		for _, c := range calls {
			ret := c.call()
			codes = append(codes, c.name+"="+ret.Error())
			switch ret {
			case nvml.SUCCESS, nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_NOT_FOUND:
			default:
				s.Problem(fmt.Sprintf("gpu %d %s", i, c.name), "%v", ret)
			}
		}
		s.Line(fmt.Sprintf("gpu %d", i), "%s", strings.Join(codes, " "))
	}
}

// sampling reads every GPU from several goroutines at once, as scrapes, status and the
// admission policy do.
func sampling(r *Report, inv *gpu.Inventory) {
	s := r.Section("sampling")
	const workers, rounds = 8, 25
	var mu sync.Mutex
	var durs []time.Duration
	var errs []string
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < rounds; n++ {
				for _, d := range inv.Devices() {
					start := time.Now()
					_, err := inv.Sample(d.Index)
					mu.Lock()
					durs = append(durs, time.Since(start))
					if err != nil && d.Healthy {
						errs = append(errs, err.Error())
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	if len(durs) > 0 {
		s.Line("samples", "%d from %d goroutines: median %v, max %v", len(durs), workers, durs[len(durs)/2], durs[len(durs)-1])
	}
	if len(errs) > 0 {
		s.Problem("errors", "%d, first: %s", len(errs), errs[0])
	}
	for _, d := range inv.Devices() {
		smp, err := inv.Sample(d.Index)
		if err != nil {
			s.Line(fmt.Sprintf("gpu %d", d.Index), "error: %v", err)
			continue
		}
		b, _ := json.Marshal(smp)
		s.Line(fmt.Sprintf("gpu %d", d.Index), "%s", b)
	}
}

// health runs the XID watcher for a few seconds: it must neither fail nor stop early.
func health(r *Report, inv *gpu.Inventory, log *slog.Logger) {
	s := r.Section("health watcher")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := inv.WatchHealth(ctx, log)
	s.Line("ran", "%v, returned %v", time.Since(start).Round(time.Millisecond), err)
	if err != nil || time.Since(start) < 4*time.Second {
		s.Problem("watcher", "stopped after %v: %v", time.Since(start), err)
	}
	for _, d := range inv.Devices() {
		if smp, err := inv.Sample(d.Index); err == nil && smp.XIDErrors > 0 {
			s.Line(fmt.Sprintf("gpu %d xid", d.Index), "%d errors, last %d (%s)", smp.XIDErrors, smp.LastXID, gpu.ClassifyXID(smp.LastXID))
		}
	}
}

// metricsPerGPU scrapes the GPU collector and lists, per GPU, the DCGM series it has.
func metricsPerGPU(r *Report, inv *gpu.Inventory) {
	s := r.Section("metrics")
	reg := prometheus.NewPedanticRegistry()
	host, _ := os.Hostname()
	reg.MustRegister(metrics.NewGPUCollector(inv, host, testkit.Discard()))
	mfs, err := reg.Gather()
	if err != nil {
		s.Problem("gather", "%v", err)
		return
	}
	series := map[string][]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "gpu" {
					series[l.GetValue()] = append(series[l.GetValue()], strings.TrimPrefix(mf.GetName(), "DCGM_FI_DEV_"))
				}
			}
		}
	}
	for _, d := range inv.Devices() {
		g := fmt.Sprint(d.Index)
		sort.Strings(series[g])
		s.Line("gpu "+g, "%s", strings.Join(series[g], " "))
	}
}

// toolkit runs the node's GPU preflight: a container with the real device request, and
// the toolkit's and runc's versions against the patched minimums.
func toolkit(r *Report, inv *gpu.Inventory) *docker.Runtime {
	s := r.Section("container toolkit")
	dir, _ := os.MkdirTemp("", "gpunode-rigcheck-")
	cfg := docker.Default()
	cfg.Instance = "gpunode-rigcheck"
	cfg.StateDir, cfg.LogDir = filepath.Join(dir, "jobs"), filepath.Join(dir, "logs")
	cfg.ImageCacheBytes = 0
	rt, err := docker.New(cfg, testkit.Discard())
	if err != nil {
		s.Problem("docker", "%v", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := rt.Ping(ctx); err != nil {
		s.Problem("docker", "%v", err)
		rt.Close()
		return nil
	}
	alloc := inv.Allocatable()
	if len(alloc) == 0 {
		s.Problem("gpus", "none allocatable")
		rt.Close()
		return nil
	}
	if err := rt.PreflightGPU(ctx, alloc); err != nil {
		s.Problem("preflight", "%v", err)
	} else {
		s.Line("preflight", "a container with %v started", alloc)
	}
	for _, c := range rt.GPUStack() {
		if c.OK {
			s.Line(c.Name, "%s (patched from %s)", c.Version, c.Minimum)
		} else {
			s.Problem(c.Name, "%s", c.Problem)
		}
	}
	return rt
}

// gemmShapes are measured by the harness and by torch's own timer, on the first GPU.
var gemmShapes = []struct {
	m, n, k   int
	precision benchmark.Precision
}{
	{4096, 4096, 4096, benchmark.FP32},
	{4096, 4096, 4096, benchmark.TF32},
	{4096, 4096, 4096, benchmark.FP16},
	{64, 64, 64, benchmark.FP32}, // µs-scale: the harness's batching must keep up with torch
}

// torchTimer is run inside the harness image: torch.utils.benchmark's own timing of the
// same GEMMs, and whether the TF32 setting changes the result and the speed.
const torchTimer = `
import json, torch
from torch.utils import benchmark as tb
out = open("/out/results.jsonl", "w")
for m, n, k, prec in json.loads(SHAPES):
    dt = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[prec]
    torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
    a = torch.randn(k, m, device="cuda", dtype=dt)
    b = torch.randn(n, k, device="cuda", dtype=dt)
    t = tb.Timer(stmt="torch.matmul(b, a)", globals={"torch": torch, "a": a, "b": b}).blocked_autorange(min_run_time=1.0)
    out.write(json.dumps({"m": m, "n": n, "k": k, "precision": prec, "median_s": t.median}) + "\n")
x = torch.randn(2048, 2048, device="cuda")
torch.backends.cuda.matmul.allow_tf32 = False
exact = x @ x
torch.backends.cuda.matmul.allow_tf32 = True
fast = x @ x
out.write(json.dumps({"tf32_differs": bool((exact - fast).abs().max().item() > 0), "cc": list(torch.cuda.get_device_capability())}) + "\n")
out.close()
`

// harnessRun runs the harness on CUDA through the node's runtime and compares its GEMM
// TFLOPS with torch's own timing of the same shapes.
func harnessRun(t *testing.T, r *Report, inv *gpu.Inventory, rt *docker.Runtime) {
	s := r.Section("harness")
	base := os.Getenv("GPUNODE_HARNESS_BASE")
	if base == "" {
		base = harness.DefaultBase
	}
	work := t.TempDir()
	os.Chmod(work, 0o755)
	alloc := inv.Allocatable()[:1]
	ctrs := harness.RuntimeContainers{Jobs: rt}
	b, err := harness.New(harness.Config{Device: "cuda", Image: harness.LocalImage, BaseImage: base, Python: "python3", GPUs: alloc, WorkDir: work}, ctrs)
	if err != nil {
		s.Problem("config", "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	hw, err := b.Hardware(ctx)
	if err != nil {
		s.Problem("probe", "%v", err)
		return
	}
	s.Line("image", "%s on %s", harness.ImageTag(base), base)
	s.Line("harness", "%s: cuda %s, cudnn %s, nccl %s, driver %s", b.Harness(), hw.CUDA, hw.CuDNN, hw.NCCL, hw.Driver)
	for _, g := range hw.GPUs {
		s.Line(fmt.Sprintf("sees gpu %d", g.Index), "%s %s %d MiB", g.UUID, g.Name, g.MemoryMB)
	}
	plan := benchmark.Plan{Profile: benchmark.Quick, Timing: benchmark.Timing{Warmup: 10, MinRepeats: 10, MaxRepeats: 1000, MinTimeMS: 1000}}
	for _, g := range gemmShapes {
		plan.Problems = append(plan.Problems, benchmark.Problem{Class: benchmark.ClassGEMM, Set: benchmark.SetTraining, Precision: g.precision,
			GEMM: &benchmark.GEMM{M: g.m, N: g.n, K: g.k}})
	}
	res, err := b.Run(ctx, plan, nil)
	if err != nil {
		s.Problem("run", "%v", err)
		return
	}
	ours := map[string]float64{}
	for _, x := range res {
		key := fmt.Sprintf("%dx%dx%d %s", x.Problem.GEMM.M, x.Problem.GEMM.N, x.Problem.GEMM.K, x.Problem.Precision)
		if x.Skipped != "" {
			s.Problem(key, "skipped: %s", x.Skipped)
			continue
		}
		ours[key] = x.Problem.FLOPs() / (x.MedianMS / 1e3) / 1e12
	}

	// torch's own timer in the same image, on the same GPU.
	shapes, _ := json.Marshal(func() (out [][]any) {
		for _, g := range gemmShapes {
			out = append(out, []any{g.m, g.n, g.k, string(g.precision)})
		}
		return
	}())
	dir, err := os.MkdirTemp(work, "torch-")
	if err != nil {
		s.Problem("torch timer", "%v", err)
		return
	}
	os.Chmod(dir, 0o777)
	var stdout, stderr bytes.Buffer
	script := strings.Replace(torchTimer, "SHAPES", fmt.Sprintf("%q", shapes), 1)
	code, err := ctrs.RunContainer(ctx, harness.ContainerSpec{Image: harness.ImageTag(base), Cmd: []string{"python3", "-c", script}, OutputDir: dir, GPUs: alloc}, &stdout, &stderr)
	if err != nil || code != 0 {
		s.Problem("torch timer", "exit %d: %v: %s", code, err, stderr.String())
		return
	}
	ampere := false
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var l struct {
			M, N, K     int
			Precision   string
			MedianS     float64 `json:"median_s"`
			TF32Differs *bool   `json:"tf32_differs"`
			CC          []int
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			s.Problem("torch timer", "%q: %v", line, err)
			continue
		}
		if l.TF32Differs != nil {
			ampere = len(l.CC) == 2 && l.CC[0] >= 8
			switch {
			case ampere && !*l.TF32Differs:
				s.Problem("tf32", "allow_tf32 does not change an fp32 matmul on compute capability %v: TF32 is not in effect", l.CC)
			default:
				s.Line("tf32", "allow_tf32 changes the result: %v (compute capability %v)", *l.TF32Differs, l.CC)
			}
			continue
		}
		key := fmt.Sprintf("%dx%dx%d %s", l.M, l.N, l.K, l.Precision)
		theirs := 2 * float64(l.M) * float64(l.N) * float64(l.K) / l.MedianS / 1e12
		mine, ok := ours[key]
		switch {
		case !ok:
		case l.M >= 1024 && math.Abs(mine-theirs)/theirs > 0.15:
			s.Problem("gemm "+key, "harness %.2f TFLOPS, torch.utils.benchmark %.2f TFLOPS: more than 15%% apart", mine, theirs)
		default:
			s.Line("gemm "+key, "harness %.2f TFLOPS, torch.utils.benchmark %.2f TFLOPS", mine, theirs)
		}
	}
	fp32, tf32 := ours["4096x4096x4096 fp32"], ours["4096x4096x4096 tf32"]
	if ampere && fp32 > 0 && tf32 < 1.2*fp32 {
		s.Problem("tf32 speed", "harness tf32 %.2f TFLOPS is not faster than fp32 %.2f TFLOPS: the harness's TF32 setting is not in effect", tf32, fp32)
	}
}
