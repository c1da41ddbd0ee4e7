//go:build integration

package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

// staleContainer leaves what an earlier chain, install or data dir leaves: a
// container carrying this instance's labels for jobID, under the name that job would
// have had before names had a random suffix, in no record of this node.
func staleContainer(t *testing.T, cli *client.Client, img, instance, jobID string) string {
	t.Helper()
	ctx := t.Context()
	resp, err := cli.ContainerCreate(ctx, &container.Config{
		Image:      img,
		Entrypoint: []string{"/probe", "write:/stale=1"},
		Labels:     map[string]string{docker.LabelInstance: instance, docker.LabelJob: jobID},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "gpunode-"+instance+"-"+jobID)
	if err != nil {
		t.Fatalf("create the stale container: %v", err)
	}
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true}) })
	return resp.ID
}

// TestStaleContainer: a leftover container with the job's instance, job ID and old
// name neither blocks the job nor is taken for the job's own on re-attach, and is left
// as it was.
func TestStaleContainer(t *testing.T) {
	testenv.Attack(t, "runtime", "stale container with the job's name and labels")
	img := probeImage(t)
	cli := engine(t)
	dir := t.TempDir()
	cfg := testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l")})
	rt := openRuntime(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	staleRun := staleContainer(t, cli, img, cfg.Instance, "1")
	spec := runtime.Spec{JobID: "1", Image: img, Command: []string{"/probe", "append:/out/runs=run"}, OutputDir: filepath.Join(dir, "o1")}
	if _, err := rt.Start(ctx, spec); err != nil {
		t.Fatalf("start beside a stale container of the same name and labels: %v", err)
	}
	res, err := rt.Wait(ctx, spec.JobID)
	if err != nil || !res.Succeeded() {
		t.Fatalf("job 1 = %+v, %v; want it run", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(spec.OutputDir, "runs")); string(b) != "run\n" {
		t.Errorf("job 1 output %q, want one run", b)
	}

	// Killed while preparing, with a stale container of the same job around: the job
	// is interrupted, the stale container is not started as if it were the job's.
	staleRecover := staleContainer(t, cli, img, cfg.Instance, "2")
	preparing := runtime.Spec{JobID: "2", Image: img, Command: []string{"/probe", "append:/out/runs=run"}, OutputDir: filepath.Join(dir, "o2")}
	if err := rt.CrashWhilePreparing(preparing); err != nil {
		t.Fatal(err)
	}
	rt.Close()
	rt2 := openRuntime(t, cfg)
	defer rt2.Close()
	if _, err := rt2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = rt2.Wait(ctx, preparing.JobID)
	if err != nil || !strings.Contains(res.Error, runtime.ErrInterrupted.Error()) {
		t.Errorf("killed while preparing beside a stale container: %+v, %v; want interrupted", res, err)
	}
	for _, id := range []string{staleRun, staleRecover} {
		ins, err := cli.ContainerInspect(ctx, id)
		if err != nil {
			t.Errorf("stale container %.12s: %v; want it left alone", id, err)
			continue
		}
		if ins.State.Status != "created" {
			t.Errorf("stale container %.12s is %s; it was taken for a job's own", id, ins.State.Status)
		}
	}
}
