package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

const probeRepo = "gpunode-test/probe"

var (
	probeOnce sync.Once
	probeID   string
	probeErr  error
)

func engine(t testing.TB) *client.Client {
	t.Helper()
	testenv.RequireDocker(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// probeImage builds, once per test process, an image FROM scratch holding the
// conformance probe as /probe and a setuid-root copy as /suid.
func probeImage(t testing.TB) string {
	t.Helper()
	cli := engine(t)
	probeOnce.Do(func() {
		bin, err := os.ReadFile(conformance.BuildProbe(t))
		if err != nil {
			probeErr = err
			return
		}
		// Tagged by the probe's hash: a rerun with the same probe reuses the image
		// instead of piling up new ones.
		sum := sha256.Sum256(bin)
		tag := probeRepo + ":" + hex.EncodeToString(sum[:6])
		if ins, err := cli.ImageInspect(t.Context(), tag); err == nil {
			probeID = ins.ID
			return
		}
		// Imported from a root filesystem tarball rather than built: the builder's COPY
		// chowns files, and chown clears the setuid bit that the escape test needs.
		probeID, probeErr = importImage(cli, tag, map[string]tarFile{"probe": {bin, 0o755}, "suid": {bin, 0o4755}})
	})
	if probeErr != nil {
		t.Fatalf("build probe image: %v", probeErr)
	}
	return probeID
}

// importImage makes an image FROM nothing but files, owned by root, modes kept.
func importImage(cli *client.Client, tag string, files map[string]tarFile) (string, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, tag, image.ImportOptions{Changes: []string{`CMD ["/probe"]`}})
	if err != nil {
		return "", err
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	ins, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		return "", &buildError{err, out}
	}
	return ins.ID, nil
}

type tarFile struct {
	data []byte
	mode int64
}

func buildImage(cli *client.Client, tag, dockerfile string, files map[string]tarFile) (string, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files["Dockerfile"] = tarFile{[]byte(dockerfile), 0o644}
	for name, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true, Version: build.BuilderV1})
	if err != nil {
		return "", err
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ins, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		return "", &buildError{err, out}
	}
	return ins.ID, nil
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

func bridgeGateway(t testing.TB, cli *client.Client) []string {
	nw, err := cli.NetworkInspect(t.Context(), "bridge", network.InspectOptions{})
	if err != nil {
		t.Fatalf("inspect bridge network: %v", err)
	}
	var out []string
	for _, c := range nw.IPAM.Config {
		if c.Gateway != "" {
			out = append(out, c.Gateway)
		}
	}
	return out
}

func testLogger(t testing.TB) *slog.Logger { return testkit.Logger(t) }

// instanceFor derives the label instance from the state dir, so that a runtime
// reopened on the same state dir (a restart) finds its containers and no other test's.
func instanceFor(stateDir string) string {
	h := sha256.Sum256([]byte(stateDir))
	return "test-" + hex.EncodeToString(h[:6])
}

func testConfig(o conformance.Options) docker.Config {
	cfg := docker.Default()
	cfg.Instance = instanceFor(o.StateDir)
	cfg.StateDir = o.StateDir
	cfg.LogDir = o.LogDir
	cfg.DatasetAllowlist = o.DatasetAllowlist
	if o.StopGrace > 0 {
		cfg.StopGrace = o.StopGrace
	}
	if o.LogMaxBytes > 0 {
		cfg.LogMaxBytes = o.LogMaxBytes
	}
	cfg.DockerConfig = "/nonexistent/config.json"
	return cfg
}

// openRuntime opens a Docker runtime; its containers are removed when the test ends.
func openRuntime(t testing.TB, cfg docker.Config) *docker.Runtime {
	t.Helper()
	rt, err := docker.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeInstance(t, cfg.Instance) })
	return rt
}

func removeInstance(t testing.TB, instance string) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer cli.Close()
	ctx := t.Context()
	list, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+instance))})
	for _, c := range list {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	// The GPU preflight's empty image, when a test reached it.
	_, _ = cli.ImageRemove(ctx, "gpunode-preflight:"+instance, image.RemoveOptions{})
}
