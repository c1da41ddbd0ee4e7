package node

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"

	"github.com/gpunode/gpunode/benchmark/harness"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/runtime/gpu"
)

// mockGPUs is go-nvml's dgxa100 mock with the telemetry it leaves unset, standing in for
// real GPUs.
func mockGPUs() *dgxa100.Server {
	srv := dgxa100.New()
	for _, d := range srv.Devices {
		md := d.(*dgxa100.Device)
		md.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 50}, nvml.SUCCESS }
		md.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return md.MemoryInfo, nvml.SUCCESS }
		md.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 200000, nvml.SUCCESS }
		md.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 60, nvml.SUCCESS }
		md.GetClockInfoFunc = func(nvml.ClockType) (uint32, nvml.Return) { return 1410, nvml.SUCCESS }
		md.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
			return nvml.FEATURE_DISABLED, nvml.FEATURE_DISABLED, nvml.SUCCESS
		}
		md.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
	return srv
}

// TestDriverMismatchRunsCPUOnly: after a driver upgrade without a reboot NVML fails to
// initialise with a version mismatch; the node runs CPU-only, and status has a failed
// check that says to reboot.
func TestDriverMismatchRunsCPUOnly(t *testing.T) {
	srv := mockGPUs()
	srv.InitFunc = func() nvml.Return { return nvml.ERROR_LIB_RM_VERSION_MISMATCH }
	inv, err := gpu.New(srv, false)
	var deps Deps
	if err := useGPUs(&deps, inv, err, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("a driver mismatch stops the node: %v", err)
	}
	if deps.GPUs != nil {
		t.Fatal("gpus in use with an unusable driver")
	}
	deps.Runtime = &fakeRuntime{}
	n, stop := startNode(t, deps)
	c := waitCheck(t, n, "nvml", false)
	if !strings.Contains(c.Message, "reboot") {
		t.Errorf("check %q does not say to reboot", c.Message)
	}
	waitCheck(t, n, "docker", true)
	for deadline := time.Now().Add(5 * time.Second); n.Status().State != "running"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node state %q, want running", n.Status().State)
		}
	}
	st := n.Status()
	if st.GPUMode != "cpu-only" || !strings.Contains(st.GPUNote, "CPU-only") {
		t.Errorf("status: mode %q state %q note %q", st.GPUMode, st.State, st.GPUNote)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestNodeRunsOnSevenGPUs: one of eight GPUs is lost at boot; the node runs, offers the
// other seven to jobs and shows the lost one as out of service.
func TestNodeRunsOnSevenGPUs(t *testing.T) {
	srv := mockGPUs()
	lost := srv.Devices[3].(*dgxa100.Device)
	lost.GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_UNKNOWN }
	inv, err := gpu.New(srv, false)
	var deps Deps
	if err := useGPUs(&deps, inv, err, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	deps.Runtime = &fakeRuntime{}
	n, stop := startNode(t, deps)
	waitCheck(t, n, "docker", true)
	got := jobGPUs(deps.GPUs)
	if len(got) != 7 || slices.Contains(got, lost.UUID) {
		t.Errorf("job gpus %v: want the 7 others", got)
	}
	st := n.Status()
	if len(st.GPUs) != 8 || st.GPUs[3].Healthy || st.GPUs[3].Error == "" || !st.GPUs[2].Healthy || st.GPUs[2].Sample == nil {
		t.Errorf("status gpus: %+v", st.GPUs)
	}
	if ns := nodeState(deps.GPUs, func() float64 { return 0 })(); ns.GPUs != 7 || ns.MaxGPUTempC != 60 {
		t.Errorf("policy node state: %+v", ns)
	}
	// The health watcher could not create its event set: it said so and the node runs on.
	if err := stop(); err != nil {
		t.Fatalf("node stopped with %v", err)
	}
}

// TestHarnessOutputUnderDataDir: the daemon's benchmark mounts its run folder into the
// harness container; under the unit's PrivateTmp= a folder in the node's /tmp is one
// dockerd cannot see, so it lives under the data directory.
func TestHarnessOutputUnderDataDir(t *testing.T) {
	cfg := Default()
	cfg.DataDir = "/var/lib/gpunode"
	h := harnessConfig(cfg, []string{"MIG-1", "GPU-2"})
	if h.WorkDir != "/var/lib/gpunode/benchmark/harness" {
		t.Errorf("harness work dir %q, want it under the data dir", h.WorkDir)
	}
	if !slices.Equal(h.GPUs, []string{"MIG-1", "GPU-2"}) {
		t.Errorf("harness gpus %v", h.GPUs)
	}
	if errs := h.Validate(); len(errs) > 0 {
		t.Error(errs)
	}
	if h.Image != harness.LocalImage || h.BaseImage != harness.DefaultBase {
		t.Errorf("harness image %q on %q, want the local build on the default base", h.Image, h.BaseImage)
	}
	pinned := "pytorch/pytorch@sha256:" + strings.Repeat("ab", 32)
	cfg.GPU.HarnessBaseImage = pinned
	if h := harnessConfig(cfg, nil); h.BaseImage != pinned {
		t.Errorf("configured base %q not used: %q", pinned, h.BaseImage)
	}
}

// TestBenchmarkReservesGPUs: the daemon's benchmark takes its GPUs from the job
// allocator, so it never runs on a GPU leased to a job, and gives them back.
func TestBenchmarkReservesGPUs(t *testing.T) {
	m := jobs.New(jobs.Default(), jobs.Deps{GPUs: []string{"GPU-a", "MIG-b"}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := allocatorGPUs{m}
	gpus, release, err := r.Reserve(t.Context())
	if err != nil || !slices.Equal(gpus, []string{"GPU-a", "MIG-b"}) {
		t.Fatalf("reserve: %v %v", gpus, err)
	}
	if m.FreeGPUs() != 0 {
		t.Errorf("%d GPUs free for jobs during the benchmark", m.FreeGPUs())
	}
	if _, _, err := r.Reserve(t.Context()); err != nil {
		t.Errorf("the benchmark's own second reservation: %v", err)
	}
	release()
	if m.FreeGPUs() != 2 {
		t.Errorf("%d GPUs free after the benchmark, want 2", m.FreeGPUs())
	}
}
