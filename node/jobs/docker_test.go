//go:build integration

package jobs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dimage "github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

// pushProbe imports a FROM-nothing image holding the conformance probe as /probe, pushes
// it to ref (host/repo:tag), removes it from the engine and returns its repo@digest.
func pushProbe(t *testing.T, cli *client.Client, ref string) string {
	t.Helper()
	ctx := t.Context()
	probe, err := os.ReadFile(conformance.BuildProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "probe", Mode: 0o755, Size: int64(len(probe)), ModTime: time.Unix(0, 0)})
	tw.Write(probe)
	tw.Close()
	rc, err := cli.ImageImport(ctx, dimage.ImportSource{Source: &buf, SourceName: "-"}, ref, dimage.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	if out, err := exec.Command("docker", "push", ref).CombinedOutput(); err != nil {
		t.Fatalf("docker push %s: %v\n%s", ref, err, out)
	}
	ins, err := cli.ImageInspect(ctx, ref)
	if err != nil || len(ins.RepoDigests) == 0 {
		t.Fatalf("pushed image %s has no repo digest: %v", ref, err)
	}
	if _, err := cli.ImageRemove(ctx, ins.ID, dimage.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), ins.RepoDigests[0], dimage.RemoveOptions{Force: true, PruneChildren: true})
	})
	return ins.RepoDigests[0]
}

// TestCancelOnDocker: on a real dockerd, a cancelled job's container is stopped and
// removed and the job ends failed with the reason; a cancel recorded while the node is
// down (its container running on) is carried out when the node starts again: the
// container is stopped, not waited for, and the job is not started again.
func TestCancelOnDocker(t *testing.T) {
	testenv.RequireDocker(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	img := pushProbe(t, cli, testenv.Registry(t, t.TempDir(), "")+"/lab/trainer:t")

	r := newRig(t, nil)
	rnd := make([]byte, 6)
	rand.Read(rnd)
	rcfg := docker.Default()
	rcfg.Instance = "test-jobs-cancel-" + hex.EncodeToString(rnd)
	rcfg.StateDir, rcfg.LogDir = filepath.Join(r.dir, "rt-state"), filepath.Join(r.dir, "rt-logs")
	rcfg.DockerConfig = "/nonexistent/config.json"
	rcfg.StopGrace = 2 * time.Second
	open := func() *docker.Runtime {
		rt, err := docker.New(rcfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	rt := open()
	t.Cleanup(func() {
		list, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+rcfg.Instance))})
		for _, c := range list {
			cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		}
	})
	r.deps.Runtime = rt
	r.deps.GPUs = nil
	containers := func(id string) []container.Summary {
		list, err := cli.ContainerList(t.Context(), container.ListOptions{All: true, Filters: filters.NewArgs(
			filters.Arg("label", docker.LabelInstance+"="+rcfg.Instance), filters.Arg("label", docker.LabelJob+"="+id))})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	running := func(id string) string {
		for _, c := range containers(id) {
			if c.State == "running" {
				return c.ID
			}
		}
		return ""
	}
	wait := func(id string, want State) Job {
		t.Helper()
		var j Job
		testkit.Eventually(t, 3*time.Minute, func() bool { j, _ = r.m.Get(id); return j.State == want },
			"job %s: %s (%s), want %s", id, testkit.Lazy(func() string { return string(j.State) }), testkit.Lazy(func() string { return j.Reason }), want)
		return j
	}
	man := manifestJSON(func(m map[string]any) {
		m["image"] = img
		m["command"] = []string{"/probe", "echo:ready", "sleep:600s"}
		m["resources"] = map[string]any{"gpus": 0}
		m["evaluation"].(map[string]any)["image"] = img
	})

	r.start()
	r.post("1", man)
	wait("1", Running)
	testkit.Eventually(t, time.Minute, func() bool { return running("1") != "" }, "job 1's container never ran")
	started := time.Now()
	if err := r.m.Cancel(t.Context(), "1", takenBack); err != nil {
		t.Fatal(err)
	}
	j := wait("1", Failed)
	if j.Reason != takenBack || j.Result == nil || !j.Result.Cancelled {
		t.Fatalf("job 1: reason %q, result %+v", j.Reason, j.Result)
	}
	if took := time.Since(started); took > rcfg.StopGrace+30*time.Second {
		t.Errorf("the cancel took %s, stop grace %s", took, rcfg.StopGrace)
	}
	testkit.Eventually(t, time.Minute, func() bool { return len(containers("1")) == 0 }, "job 1's container left: %v",
		testkit.Lazy(func() string { return fmt.Sprint(containers("1")) }))
	if r.chain.abandoned["1"] != takenBack {
		t.Fatalf("job 1 given back with %q", r.chain.abandoned["1"])
	}

	// The node goes down while job 2 runs; the cancel is recorded before it starts again.
	r.post("2", man)
	wait("2", Running)
	testkit.Eventually(t, time.Minute, func() bool { return running("2") != "" }, "job 2's container never ran")
	before := running("2")
	r.stop()
	rt.Close()
	if running("2") != before {
		t.Fatal("job 2's container did not outlive the node")
	}
	r.openStore()
	rt = open()
	defer rt.Close()
	r.deps.Runtime = rt
	down := New(testConfig(), r.deps, quiet)
	if err := down.Cancel(t.Context(), "2", takenBack); err != nil {
		t.Fatal(err)
	}
	r.start()
	j = wait("2", Failed)
	if j.Reason != takenBack || j.Result == nil || !j.Result.Cancelled {
		t.Fatalf("job 2: reason %q, result %+v", j.Reason, j.Result)
	}
	testkit.Eventually(t, time.Minute, func() bool { return len(containers("2")) == 0 }, "job 2's container left")
	h, _ := r.store.History("2")
	var path []string
	for _, tr := range h {
		path = append(path, tr.To)
	}
	if got := strings.Join(path, ","); strings.Count(got, "preparing") != 1 || !strings.Contains(got, "running,failed") {
		t.Fatalf("job 2's history %s: want one start, stopped from running", got)
	}
}
