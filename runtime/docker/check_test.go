//go:build integration

package docker_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/docker"
)

// TestCheck: the dry run pulls the image by digest, measures it, creates the container
// exactly as Start would and removes it at once; what the engine or the operator
// refuses comes back as a sentinel, and no container is left behind in any case.
func TestCheck(t *testing.T) {
	addr := startRegistry(t, t.TempDir(), false)
	ref := pushUnique(t, addr, "gpunode/check", "v1")
	var instance string
	rt := registryRuntime(t, func(c *docker.Config) { instance = c.Instance })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	spec := func(id string) runtime.Spec {
		return runtime.Spec{JobID: id, Image: ref, Command: []string{"/payload"}, OutputDir: filepath.Join(t.TempDir(), "out")}
	}

	got, err := rt.Check(ctx, spec("check-good"), 0)
	if err != nil {
		t.Fatalf("check of a good job: %v", err)
	}
	if got.ImageBytes < 256<<10 || !strings.HasPrefix(got.ImageID, "sha256:") || got.Platform == "" {
		t.Errorf("checked = %+v", got)
	}
	t.Cleanup(func() { removeImage(t, got.ImageID) })

	for _, tc := range []struct {
		name string
		edit func(s *runtime.Spec)
		max  int64
		want error
	}{
		{"image above the cap", func(s *runtime.Spec) {}, 1 << 10, runtime.ErrImageTooLarge},
		{"memory below the engine minimum", func(s *runtime.Spec) { s.Resources.MemoryBytes = 1 << 20 }, 0, runtime.ErrContainerRefused},
		{"more memory than the cap", func(s *runtime.Spec) { s.Resources.MemoryBytes = 1 << 50 }, 0, runtime.ErrOverCaps},
		{"longer than the run cap", func(s *runtime.Spec) { s.RunTimeout = 1000 * time.Hour }, 0, runtime.ErrOverCaps},
		{"unknown digest", func(s *runtime.Spec) { s.Image = addr + "/gpunode/check@sha256:" + strings.Repeat("cd", 32) }, 0, runtime.ErrImageNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.Attack(t, "runtime", "dry run of a job that cannot run: "+tc.name)
			s := spec("check-" + strings.ReplaceAll(tc.name, " ", "-"))
			tc.edit(&s)
			_, err := rt.Check(ctx, s, tc.max)
			if !errors.Is(err, tc.want) {
				t.Errorf("check = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := rt.Check(ctx, runtime.Spec{JobID: "check-no-command", Image: ref, OutputDir: t.TempDir()}, 0); err == nil || !strings.Contains(err.Error(), "command") {
		t.Errorf("check without a command = %v, want it refused", err)
	}
	list, err := engine(t).ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+instance))})
	if err != nil || len(list) != 0 {
		t.Errorf("containers left after the checks: %d (%v)", len(list), err)
	}
}
