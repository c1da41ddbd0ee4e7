//go:build integration

package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/internal/testenv"
)

// dockerContainers is a minimal Containers over the Docker SDK that streams stdout, the
// other shape of Containers beside RuntimeContainers (TestRuntimeEndToEnd).
type dockerContainers struct{ cli *client.Client }

func (d dockerContainers) RunContainer(ctx context.Context, spec ContainerSpec, stdout, stderr io.Writer) (int, error) {
	hc := &container.HostConfig{NetworkMode: "none"}
	hc.CapDrop = []string{"ALL"}
	hc.SecurityOpt = []string{"no-new-privileges"}
	hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: spec.OutputDir, Target: "/out"})
	for _, m := range spec.Mounts {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	if len(spec.GPUs) > 0 {
		req := container.DeviceRequest{Driver: "nvidia", Capabilities: [][]string{{"gpu"}}}
		if len(spec.GPUs) == 1 && spec.GPUs[0] == "all" {
			req.Count = -1
		} else {
			req.DeviceIDs = spec.GPUs
		}
		hc.DeviceRequests = []container.DeviceRequest{req}
	}
	c, err := d.cli.ContainerCreate(ctx, &container.Config{Image: spec.Image, Cmd: spec.Cmd, Labels: map[string]string{"gpunode.test": "harness"}}, hc, nil, nil, "")
	if err != nil {
		return 0, fmt.Errorf("create: %w", err)
	}
	defer d.cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	if err := d.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return 0, fmt.Errorf("start: %w", err)
	}
	logs, err := d.cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return 0, fmt.Errorf("logs: %w", err)
	}
	defer logs.Close()
	if _, err := stdcopy.StdCopy(stdout, stderr, logs); err != nil {
		return 0, fmt.Errorf("logs: %w", err)
	}
	waitC, errC := d.cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		return int(w.StatusCode), nil
	case err := <-errC:
		return 0, fmt.Errorf("wait: %w", err)
	}
}

// buildCIImage builds the CI harness image from the repo's own Dockerfile (the one the
// node embeds and builds on rigs) with BASE=scratch: only the script, nothing pulled;
// Python and torch come from the host through read-only bind mounts (Config.HostMounts).
func buildCIImage(t *testing.T) string {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	const tag = "gpunode-harness-ci:test"
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	scratch := "scratch"
	resp, err := cli.ImageBuild(ctx, BuildContext(), build.ImageBuildOptions{
		Tags: []string{tag}, BuildArgs: map[string]*string{"BASE": &scratch}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("docker build: %v", err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ins, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	// One layer, the script's: the image is FROM scratch, no base was pulled.
	if len(ins.RootFS.Layers) != 1 || ins.Config.User != "65534:65534" {
		t.Fatalf("CI harness image: %d layers, user %q", len(ins.RootFS.Layers), ins.Config.User)
	}
	return tag
}

// CIHostMounts are the host folders the CI image borrows Python and torch from.
var ciHostMounts = []string{"/usr", "/lib", "/lib64", "/etc/alternatives"}

// TestContainerEndToEnd: the node starts the harness image through the container runtime
// against real dockerd and reads its results.
func TestContainerEndToEnd(t *testing.T) {
	testenv.RequireDocker(t)
	requireTorch(t)
	image := buildCIImage(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var mounts []string
	for _, m := range ciHostMounts {
		if _, err := os.Stat(m); err == nil {
			mounts = append(mounts, m)
		}
	}
	b, err := New(Config{Device: "cpu", Image: image, Python: hostPython, HostMounts: mounts, Threads: 1}, dockerContainers{cli})
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
		t.Errorf("report from the container: harness %q, scores %+v", r.Harness, r.Scores)
	}

	// A harness that fails inside the container is an error with its message.
	bad, _ := New(Config{Device: "cuda", Image: image, Python: hostPython, HostMounts: mounts}, noGPUs{dockerContainers{cli}})
	if _, err := bad.Capabilities(ctx); err == nil || !strings.Contains(err.Error(), "no CUDA device") {
		t.Errorf("cuda harness without GPUs: %v", err)
	}
}

// noGPUs drops the GPU request: this machine has no NVIDIA runtime, and the test is about
// the harness's own error, not dockerd's.
type noGPUs struct{ dockerContainers }

func (n noGPUs) RunContainer(ctx context.Context, spec ContainerSpec, stdout, stderr io.Writer) (int, error) {
	spec.GPUs = nil
	return n.dockerContainers.RunContainer(ctx, spec, stdout, stderr)
}
