//go:build integration

package docker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

// probeImageWithEnv builds an image FROM the probe image whose config sets env, as a
// CUDA base image (or an attacker's image) does; it is removed when the test ends.
func probeImageWithEnv(t *testing.T, env ...string) string {
	t.Helper()
	var lines string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		lines += "ENV " + k + "=" + v + "\n"
	}
	return probeImageFrom(t, "env", lines)
}

// probeImageFrom builds an image FROM the probe image with the Dockerfile lines given,
// under a fresh tag in the repository gpunode-test/NAME, and removes it when the test
// ends. It returns the image's ID.
func probeImageFrom(t *testing.T, name, lines string) string {
	t.Helper()
	cli := engine(t)
	base, err := cli.ImageInspect(t.Context(), probeImage(t))
	if err != nil || len(base.RepoTags) == 0 {
		t.Fatalf("probe image: %v %v", err, base.RepoTags)
	}
	var b [6]byte
	rand.Read(b[:])
	tag := "gpunode-test/" + name + ":" + hex.EncodeToString(b[:])
	id, err := buildImage(cli, tag, "FROM "+base.RepoTags[0]+"\n"+lines, map[string]tarFile{})
	if err != nil {
		t.Fatalf("build %s: %v", tag, err)
	}
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), tag, image.RemoveOptions{PruneChildren: true})
	})
	return id
}

// jobContainer waits for the job's container to exist and returns its inspection.
func jobContainer(t *testing.T, instance, jobID string) container.InspectResponse {
	t.Helper()
	cli := engine(t)
	ctx := t.Context()
	deadline := time.Now().Add(time.Minute)
	for {
		list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
			filters.Arg("label", docker.LabelInstance+"="+instance), filters.Arg("label", docker.LabelJob+"="+jobID))})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 {
			ins, err := cli.ContainerInspect(ctx, list[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			return ins
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: no container", jobID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCPUJobGetsNoGPUs: where an operator made the NVIDIA runtime dockerd's default, a
// CUDA base image's NVIDIA_VISIBLE_DEVICES=all would attach every GPU of the rig to a job
// that asked for none. A CPU job runs on runc with NVIDIA_VISIBLE_DEVICES=void, whatever
// its image says.
func TestCPUJobGetsNoGPUs(t *testing.T) {
	img := probeImageWithEnv(t, "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=all", "LD_LIBRARY_PATH=/usr/local/nvidia/lib64")
	dir := t.TempDir()
	cfg := testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l")})
	rt := openRuntime(t, cfg)
	defer rt.Close()
	spec := runtime.Spec{
		JobID: "cpu-job", Image: img, AllowTag: true, OutputDir: filepath.Join(dir, "out"),
		Command: []string{"/probe", "env:NVIDIA_VISIBLE_DEVICES", "env:NVIDIA_DRIVER_CAPABILITIES", "env:LD_LIBRARY_PATH", "sleep:2m"},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ins := jobContainer(t, cfg.Instance, spec.JobID)
	if ins.HostConfig.Runtime != "runc" {
		t.Errorf("cpu job's runtime %q, want runc", ins.HostConfig.Runtime)
	}
	if len(ins.HostConfig.DeviceRequests) != 0 {
		t.Errorf("cpu job has device requests: %+v", ins.HostConfig.DeviceRequests)
	}
	env := ins.Config.Env
	if !slices.Contains(env, "NVIDIA_VISIBLE_DEVICES=void") || slices.Contains(env, "NVIDIA_VISIBLE_DEVICES=all") {
		t.Errorf("cpu job's environment %v: want NVIDIA_VISIBLE_DEVICES=void only", env)
	}
	if err := rt.Stop(ctx, spec.JobID); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Wait(ctx, spec.JobID); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(cfg.LogDir, spec.JobID+".log"))
	if err != nil {
		t.Fatal(err)
	}
	// What the job itself sees: the node's value, not the image's; the image's harmless
	// variables stay.
	for _, want := range []string{"env: NVIDIA_VISIBLE_DEVICES=void\n", "env: LD_LIBRARY_PATH=/usr/local/nvidia/lib64\n"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("job output lacks %q:\n%s", want, log)
		}
	}
}

// TestJobEnvRefused plays a job author reaching for the NVIDIA Container Toolkit: the
// loader's variables and the toolkit's own, from the manifest or from the image's ENV
// (CVE-2025-23266). Each is refused before a container exists; the job never runs.
func TestJobEnvRefused(t *testing.T) {
	plain := probeImage(t)
	for _, tc := range []struct {
		name     string
		imageEnv []string
		env      []string
		want     error
		says     string
	}{
		{"manifest LD_PRELOAD", nil, []string{"LD_PRELOAD=/probe"}, nil, "LD_PRELOAD"},
		{"manifest LD_AUDIT", nil, []string{"LD_AUDIT=/probe"}, nil, "LD_AUDIT"},
		{"manifest NVIDIA_VISIBLE_DEVICES", nil, []string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, "NVIDIA_VISIBLE_DEVICES"},
		{"image LD_PRELOAD", []string{"LD_PRELOAD=/probe"}, nil, runtime.ErrImageRefused, "CVE-2025-23266"},
		{"image LD_AUDIT", []string{"LD_AUDIT=/probe"}, nil, runtime.ErrImageRefused, "LD_AUDIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := plain
			if tc.imageEnv != nil {
				img = probeImageWithEnv(t, tc.imageEnv...)
			}
			dir := t.TempDir()
			cfg := testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l")})
			rt := openRuntime(t, cfg)
			defer rt.Close()
			spec := runtime.Spec{
				JobID: "env-refused", Image: img, AllowTag: true, Env: tc.env, OutputDir: filepath.Join(dir, "out"),
				Command: []string{"/probe", "write:/out/ran=1"},
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			// The dry run before the node takes the job refuses it already.
			if _, err := rt.Check(ctx, spec, 0); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("check = %v, want a refusal naming %s", err, tc.says)
			}
			_, err := rt.Start(ctx, spec)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("start = %v, want a refusal naming %s", err, tc.says)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("start = %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(spec.OutputDir, "ran")); err == nil {
				t.Error("the job ran")
			}
			list, err := engine(t).ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+cfg.Instance))})
			if err != nil || len(list) != 0 {
				t.Errorf("containers of a refused job: %d (%v)", len(list), err)
			}
		})
	}
}
