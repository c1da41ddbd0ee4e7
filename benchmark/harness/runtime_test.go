//go:build integration

package harness

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/docker"
)

// TestRuntimeEndToEnd runs the harness as a job of the node's own container runtime
// (runtime/docker, with its hardening) against real dockerd and reads its results from
// the output directory.
func TestRuntimeEndToEnd(t *testing.T) {
	testenv.RequireDocker(t)
	requireTorch(t)
	dir := t.TempDir()
	cfg := docker.Default()
	cfg.Instance = "benchmark-test"
	cfg.StateDir, cfg.LogDir = filepath.Join(dir, "jobs"), filepath.Join(dir, "logs")
	cfg.ImageCacheBytes = 0
	rt, err := docker.New(cfg, testkit.Discard())
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
	// As under systemd: the run folders live in the node's data directory, which dockerd
	// sees, not in the node's (private) temporary directory.
	workDir := filepath.Join(t.TempDir(), "data", "benchmark", "harness")
	jobs := &outputDirs{Jobs: rt}
	// The node builds the harness image itself from the embedded Dockerfile, here on
	// scratch: nothing is pulled, by the base's name or the image's.
	image := ImageTag("scratch")
	t.Cleanup(func() { removeImage(t, image) })
	b, err := New(Config{Device: "cpu", Image: LocalImage, BaseImage: "scratch", Python: hostPython, HostMounts: mounts, Threads: 1, WorkDir: workDir}, RuntimeContainers{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
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
	if len(jobs.dirs) < 2 {
		t.Errorf("harness runs: %v", jobs.dirs)
	}
	for _, d := range jobs.dirs {
		// <work dir>/<run folder>/out: the run folder also holds the plan, read-only.
		if filepath.Base(d) != "out" || filepath.Dir(filepath.Dir(d)) != workDir {
			t.Errorf("harness output folder %s is not a run folder's out/ in the work dir %s", d, workDir)
		}
	}
	if left, _ := os.ReadDir(workDir); len(left) != 0 {
		t.Errorf("run folders left behind: %v", left)
	}
	// The runtime attaches GPUs by UUID only.
	if _, err := (RuntimeContainers{Jobs: rt}).RunContainer(ctx, ContainerSpec{Image: image, Cmd: []string{"x"}, OutputDir: t.TempDir(), GPUs: []string{"all"}}, io.Discard, io.Discard); err == nil {
		t.Error(`GPUs "all" accepted`)
	}
}

// outputDirs records the output folder of every harness job started.
type outputDirs struct {
	Jobs
	dirs []string
}

func (o *outputDirs) Start(ctx context.Context, spec runtime.Spec) (runtime.Handle, error) {
	o.dirs = append(o.dirs, spec.OutputDir)
	return o.Jobs.Start(ctx, spec)
}

func removeImage(t *testing.T, ref string) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer cli.Close()
	cli.ImageRemove(t.Context(), ref, image.RemoveOptions{Force: true})
}

func (o *outputDirs) BuildImage(ctx context.Context, tag string, buildContext io.Reader, args map[string]string) (string, error) {
	return o.Jobs.(Builder).BuildImage(ctx, tag, buildContext, args)
}
