//go:build integration

package docker

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/runtime"
)

// preflightRuntime is a runtime of its own instance whose preflight image and
// containers are removed when the test ends.
func preflightRuntime(t *testing.T) *Runtime {
	t.Helper()
	testenv.RequireDocker(t)
	dir := t.TempDir()
	cfg := Default()
	cfg.Instance = "test-preflight-" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")
	cfg.StateDir, cfg.LogDir = filepath.Join(dir, "s"), filepath.Join(dir, "l")
	cfg.DockerConfig = "/nonexistent/config.json"
	r, err := New(cfg, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		list, _ := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+cfg.Instance))})
		for _, c := range list {
			r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
		r.cli.ImageRemove(ctx, "gpunode-preflight:"+cfg.Instance, image.RemoveOptions{})
		r.Close()
	})
	return r
}

// TestPreflightContainer runs the preflight's container against the real engine: without
// a device request it gets as far as the missing entrypoint, which the preflight reads
// as a working path; with the GPUs a job would get, on an engine that cannot attach
// them (no toolkit here, or dockerd started before it was installed), it fails with the
// fix. Either way it leaves no container behind and pulls nothing.
func TestPreflightContainer(t *testing.T) {
	r := preflightRuntime(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := r.tryContainer(ctx, nil); err != nil {
		t.Fatalf("a container that reaches its entrypoint was not taken as working: %v", err)
	}
	err := r.tryGPUs(ctx, []string{"GPU-4a6f5b0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"})
	if !errors.Is(err, runtime.ErrNoGPURuntime) || !strings.Contains(err.Error(), "restart dockerd") {
		t.Errorf("gpu request without a toolkit: %v", err)
	}
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+r.cfg.Instance))})
	if err != nil || len(list) != 0 {
		t.Errorf("preflight left %d containers (%v)", len(list), err)
	}
}

// TestPreflightVersions: the preflight refuses a toolkit or runc older than the patched
// release, says which and how to fix it, and shows every component for status.
func TestPreflightVersions(t *testing.T) {
	r := preflightRuntime(t)
	ctx := t.Context()
	for _, tt := range []struct {
		name, toolkit, runc string
		says                []string
	}{
		{"patched", "NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80", "1.2.8", nil},
		{"old toolkit", "NVIDIA Container Toolkit CLI version 1.17.3", "1.3.3", []string{"nvidia-container-toolkit 1.17.3", "upgrade nvidia-container-toolkit to 1.17.8", "CVE-2025-23266"}},
		{"old runc", "cli-version: 1.18.0", "1.1.12", []string{"runc 1.1.12", "upgrade runc to 1.2.8"}},
		{"both old", "cli-version: 1.16.2", "1.3.1", []string{"nvidia-container-toolkit 1.16.2", "runc 1.3.1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r.toolVersion = func(c string) (string, error) {
				if c == "runc" {
					return tt.runc, nil
				}
				return tt.toolkit, nil
			}
			err := r.checkGPUStack(ctx)
			if (err == nil) != (tt.says == nil) {
				t.Fatalf("err = %v", err)
			}
			if err != nil && !errors.Is(err, runtime.ErrGPURuntimeOutdated) {
				t.Errorf("err %v does not wrap ErrGPURuntimeOutdated", err)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not say %q: %v", s, err)
				}
			}
			stack := r.GPUStack()
			if len(stack) != 2 || stack[0].Name != "nvidia-container-toolkit" || stack[1].Name != "runc" || stack[1].Minimum != "1.2.8, 1.3.3, 1.4.0-rc.3" {
				t.Fatalf("stack %+v", stack)
			}
			for _, c := range stack {
				if c.Version == "" || c.OK != (c.Problem == "") {
					t.Errorf("component %+v", c)
				}
			}
		})
	}
	r.toolVersion = func(string) (string, error) { return "", errors.New("nvidia-ctk: not found") }
	if err := r.checkGPUStack(ctx); !errors.Is(err, runtime.ErrGPURuntimeOutdated) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("no toolkit: %v", err)
	}
}
