package harness

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime/docker"
)

// TestRuntimeEndToEnd runs the harness as a job of the node's own container runtime
// (runtime/docker, with its hardening) against real dockerd and reads its results from
// the output directory.
func TestRuntimeEndToEnd(t *testing.T) {
	testenv.RequireDocker(t)
	requireTorch(t)
	image := buildCIImage(t)
	dir := t.TempDir()
	cfg := docker.Default()
	cfg.Instance = "benchmark-test"
	cfg.StateDir, cfg.LogDir = filepath.Join(dir, "jobs"), filepath.Join(dir, "logs")
	cfg.ImageCacheBytes = 0
	rt, err := docker.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	var mounts []string
	for _, m := range ciHostMounts {
		if _, err := os.Stat(m); err == nil {
			mounts = append(mounts, m)
		}
	}
	b, err := New(Config{Device: "cpu", Image: image, Python: hostPython, HostMounts: mounts, Threads: 1}, RuntimeContainers{Jobs: rt})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	hw, err := b.Hardware(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan := loadPlan(t)
	res, err := b.Run(ctx, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := benchmark.NewReport(b.Name(), b.Harness(), plan, hw, res, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Scores.Rig <= 0 || !strings.HasPrefix(r.Harness, "gpunode-harness/1") {
		t.Errorf("report through the runtime: harness %q, scores %+v", r.Harness, r.Scores)
	}
	// The runtime attaches GPUs by UUID only.
	if _, err := (RuntimeContainers{Jobs: rt}).RunContainer(ctx, ContainerSpec{Image: image, Cmd: []string{"x"}, OutputDir: t.TempDir(), GPUs: []string{"all"}}, io.Discard, io.Discard); err == nil {
		t.Error(`GPUs "all" accepted`)
	}
}
