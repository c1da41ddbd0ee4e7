//go:build integration

package docker_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

// TestRecoverWarnsOnlyOfForeignContainers: the node recovers more than once at start
// (its Run, the job machine's Run), and a job started by this process is watched
// already. Only a labelled container that no record of the node names is warned of;
// the node's own jobs never are, however often Recover runs, before a restart or after.
func TestRecoverWarnsOnlyOfForeignContainers(t *testing.T) {
	img := probeImage(t)
	cli := engine(t)
	dir := t.TempDir()
	cfg := testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l"), StopGrace: time.Second})
	var logs testkit.Buffer
	open := func() *docker.Runtime {
		rt, err := docker.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeInstance(t, cfg.Instance) })
		return rt
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	foreign := staleContainer(t, cli, img, cfg.Instance, "9")
	rt := open()
	spec := runtime.Spec{JobID: "1", Image: img, Command: []string{"/probe", "sleep:60s"}, OutputDir: filepath.Join(dir, "o1")}
	if _, err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// A finished job whose container is gone is no one's either.
	done := runtime.Spec{JobID: "2", Image: img, Command: []string{"/probe", "echo:done"}, OutputDir: filepath.Join(dir, "o2")}
	if _, err := rt.Start(ctx, done); err != nil {
		t.Fatal(err)
	}
	if res, err := rt.Wait(ctx, done.JobID); err != nil || !res.Succeeded() {
		t.Fatalf("job 2: %+v, %v", res, err)
	}
	recoverTwice := func(rt *docker.Runtime, when string) {
		t.Helper()
		before := len(warnings(logs.String()))
		for range 2 {
			if _, err := rt.Recover(ctx); err != nil {
				t.Fatal(err)
			}
		}
		got := warnings(logs.String())[before:]
		if len(got) != 2 {
			t.Errorf("%s: %d warnings from two Recover calls, want one each of the foreign container:\n%s", when, len(got), strings.Join(got, "\n"))
		}
		for _, w := range got {
			if !strings.Contains(w, "job_id=9") || !strings.Contains(w, "container_id="+foreign[:12]) {
				t.Errorf("%s: warned of a container of the node's own: %s", when, w)
			}
		}
	}
	recoverTwice(rt, "beside a job this process started")

	// Restarted: the running job is re-attached, then recovered again.
	rt.Close()
	rt2 := open()
	defer rt2.Close()
	recoverTwice(rt2, "after a restart")
	if err := rt2.Stop(ctx, spec.JobID); err != nil {
		t.Fatal(err)
	}
	if res, err := rt2.Wait(ctx, spec.JobID); err != nil || !res.Cancelled {
		t.Errorf("job 1 after the restart: %+v, %v; want it re-attached and stopped", res, err)
	}
	if t.Failed() {
		t.Logf("runtime log:\n%s", logs.String())
	}
}

func warnings(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "no job record") {
			out = append(out, l)
		}
	}
	return out
}

// TestJobRemovedFromOutside: a job's container force-removed by someone else (docker rm
// -f, a cleanup by the instance label) dies with exit 137 while the engine takes its
// files away. The result says so, rather than the engine's "Could not find the file
// /out in container" from collecting the output of a container being removed, and the
// raw output is released.
func TestJobRemovedFromOutside(t *testing.T) {
	img := probeImage(t)
	cli := engine(t)
	dir := t.TempDir()
	cfg := testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l")})
	rt := openRuntime(t, cfg)
	defer rt.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, after := range []string{"started", "re-attached"} {
		t.Run(after, func(t *testing.T) {
			rt := rt
			spec := runtime.Spec{JobID: "rm-" + after, Image: img, Command: []string{"/probe", "write:/out/epoch-1=x", "sleep:60s"}, OutputDir: filepath.Join(dir, after)}
			h, err := rt.Start(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			if after == "re-attached" {
				rt.Close()
				rt = openRuntime(t, cfg)
				defer rt.Close()
				if _, err := rt.Recover(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := cli.ContainerRemove(ctx, h.ContainerID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				t.Fatal(err)
			}
			res, err := rt.Wait(ctx, spec.JobID)
			if err != nil {
				t.Fatal(err)
			}
			if res.Succeeded() || !strings.Contains(res.Error, "removed from outside the node") {
				t.Errorf("result %+v; want a failure that says the container was removed from outside", res)
			}
			if res.ExitCode != 0 && res.ExitCode != 137 {
				t.Errorf("exit code %d, want 137 (killed by the removal) or none (gone before inspected)", res.ExitCode)
			}
			testkit.Eventually(t, 30*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(cfg.StateDir, "out", spec.JobID))
				return errors.Is(err, fs.ErrNotExist)
			}, "the raw output of job %s to be released", spec.JobID)
		})
	}
}
