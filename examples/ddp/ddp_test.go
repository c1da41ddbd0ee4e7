//go:build integration

package ddp_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/gpunode/gpunode/examples/ddp"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/docker"
)

// hostPython is Debian's interpreter with python3-torch (a pyenv shim may come first on PATH).
const hostPython = "/usr/bin/python3"

func requireTorch(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(hostPython, "-c", "import torch").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import torch (%v: %s): install Debian's python3-torch; %s", hostPython, err, out, testenv.Setup)
	}
}

// hostMounts lend the containers the host's Python and torch: the image is FROM nothing.
func hostMounts() []runtime.Mount {
	var out []runtime.Mount
	for _, p := range []string{"/usr", "/lib", "/lib64", "/etc/alternatives"} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, runtime.Mount{Source: p, Target: p})
		}
	}
	return out
}

// trainerImage imports train.py into an image FROM nothing, tagged by the script's hash.
func trainerImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	sum := sha256.Sum256(ddp.Script)
	tag := "gpunode-test/ddp:" + hex.EncodeToString(sum[:6])
	ctx := t.Context()
	if ins, err := cli.ImageInspect(ctx, tag); err == nil {
		return ins.ID
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "train.py", Mode: 0o644, Size: int64(len(ddp.Script)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(ddp.Script)
	tw.Close()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, tag, image.ImportOptions{})
	if err != nil {
		t.Fatalf("import trainer image: %v", err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	ins, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("import trainer image: %v", err)
	}
	return ins.ID
}

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// rig opens one member rig's runtime, as its daemon would.
func rig(t *testing.T, cli *client.Client) *docker.Runtime {
	dir := t.TempDir()
	h := sha256.Sum256([]byte(dir))
	cfg := docker.Default()
	cfg.Instance = "test-ddp-" + hex.EncodeToString(h[:6])
	cfg.StateDir, cfg.LogDir = filepath.Join(dir, "state"), filepath.Join(dir, "logs")
	cfg.DockerConfig = "/nonexistent/config.json"
	cfg.User = "65534:65534"
	rt, err := docker.New(cfg, logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rt.Close()
		list, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+cfg.Instance))})
		for _, c := range list {
			cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		}
	})
	return rt
}

func spec(t *testing.T, img, id string, cluster *runtime.Cluster) runtime.Spec {
	return runtime.Spec{
		JobID: id, Image: img,
		Command:    []string{hostPython, "/train.py", "--out", "/out", "--timeout", "90"},
		Env:        []string{"PYTHONDONTWRITEBYTECODE=1", "OMP_NUM_THREADS=1"},
		Inputs:     hostMounts(),
		OutputDir:  filepath.Join(t.TempDir(), "out"),
		RunTimeout: 5 * time.Minute,
		Resources:  runtime.Resources{CPUs: 1, MemoryBytes: 2 << 30, PIDs: 512},
		Cluster:    cluster,
	}
}

func logOf(t *testing.T, rt *docker.Runtime, id string) string {
	rc, err := rt.Logs(t.Context(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// removeClusterNetworks removes what a failed run left of the job's cluster network.
func removeClusterNetworks(cli *client.Client, id string) {
	list, _ := cli.NetworkList(context.Background(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", docker.LabelCluster+"="+id))})
	for _, nw := range list {
		cli.NetworkRemove(context.Background(), nw.ID)
	}
}

type metrics struct {
	WorldSize int    `json:"world_size"`
	Backend   string `json:"backend"`
	Ranks     []struct {
		Rank     int    `json:"rank"`
		NodeRank int    `json:"node_rank"`
		Host     string `json:"host"`
	} `json:"ranks"`
	InSync bool `json:"replicas_in_sync"`
}

// checkpoint checks that rank 0's output holds a checkpoint torch loads, and returns its
// metrics.
func checkpoint(t *testing.T, dir string) metrics {
	t.Helper()
	load := `import sys, torch
sd = torch.load(sys.argv[1])
assert sorted(sd) == ["0.bias", "0.weight", "2.bias", "2.weight"], sorted(sd)
assert tuple(sd["0.weight"].shape) == (32, 64) and tuple(sd["2.weight"].shape) == (10, 32)
print("loaded", len(sd))`
	if out, err := exec.Command(hostPython, "-c", load, filepath.Join(dir, "model.pt")).CombinedOutput(); err != nil || !strings.Contains(string(out), "loaded 4") {
		t.Fatalf("rank 0's checkpoint does not load: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m metrics
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("metrics.json: %v", err)
	}
	return m
}

// TestDDPAcrossTwoRigs is acceptance points 2 and 6 of pools on one machine: the example
// trainer runs with gloo across two containers started by two runtimes (two daemons),
// one process per rank from the rendezvous environment; both ranks join, the replicas end
// equal, and rank 0's checkpoint exists and loads. What the containers can reach is
// TestClusterMembersReachOnlyEachOther's (runtime/docker).
func TestDDPAcrossTwoRigs(t *testing.T) {
	testenv.RequireDocker(t)
	requireTorch(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() }) // after the cleanups below, which use it
	img := trainerImage(t, cli)
	id := fmt.Sprintf("ddp%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	// Registered first, so it runs after the rigs' containers are gone.
	t.Cleanup(func() { removeClusterNetworks(cli, id) })
	rigs := []*docker.Runtime{rig(t, cli), rig(t, cli)}
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()

	specs := make([]runtime.Spec, 2)
	results := make([]runtime.Result, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for rank, rt := range rigs {
		specs[rank] = spec(t, img, id, &runtime.Cluster{ID: id, NodeRank: rank, NNodes: 2, NProcPerNode: 1})
		wg.Add(1)
		go func() { // both daemons start their member at once, racing to make the network
			defer wg.Done()
			if _, err := rt.Start(ctx, specs[rank]); err != nil {
				errs[rank] = err
				return
			}
			results[rank], errs[rank] = rt.Wait(ctx, id)
		}()
	}
	wg.Wait()
	for rank, rt := range rigs {
		log := ""
		if errs[rank] == nil {
			log = logOf(t, rt, id)
		}
		if errs[rank] != nil || !results[rank].Succeeded() {
			t.Fatalf("rank %d: %+v %v\n%s", rank, results[rank], errs[rank], log)
		}
		for _, want := range []string{
			fmt.Sprintf("rank %d of 2 joined (node %d, backend gloo, device cpu)", rank, rank),
			fmt.Sprintf("rank %d: replicas in sync: True", rank),
		} {
			if !strings.Contains(log, want) {
				t.Errorf("rank %d: log lacks %q:\n%s", rank, want, log)
			}
		}
	}
	m := checkpoint(t, specs[0].OutputDir)
	if m.WorldSize != 2 || m.Backend != "gloo" || !m.InSync || len(m.Ranks) != 2 ||
		m.Ranks[0].Host != "rank0" || m.Ranks[1].Host != "rank1" || m.Ranks[1].NodeRank != 1 {
		t.Fatalf("rank 0's metrics: %+v, want both ranks (hosts rank0, rank1), gloo, in sync", m)
	}
	if ents, _ := os.ReadDir(specs[1].OutputDir); len(ents) != 0 {
		t.Errorf("rank 1 wrote output %v: only rank 0 writes the checkpoint", ents)
	}
}

// TestDDPOnOneRig: the same trainer alone, without a rendezvous environment and with no
// network at all, as an ordinary single-rig job.
func TestDDPOnOneRig(t *testing.T) {
	testenv.RequireDocker(t)
	requireTorch(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() }) // after the cleanups below, which use it
	img := trainerImage(t, cli)
	rt := rig(t, cli)
	id := fmt.Sprintf("ddp1-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	s := spec(t, img, id, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if _, err := rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	res, err := rt.Wait(ctx, id)
	if err != nil || !res.Succeeded() {
		t.Fatalf("%+v %v\n%s", res, err, logOf(t, rt, id))
	}
	if m := checkpoint(t, s.OutputDir); m.WorldSize != 1 || m.Backend != "none" || len(m.Ranks) != 1 {
		t.Fatalf("metrics %+v, want one rank without a backend", m)
	}
}
