//go:build integration

package docker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
)

// On this machine (and CI) there is no NVIDIA Container Toolkit: a GPU job must fail
// before its container exists, saying what is missing and how to fix it.
func TestGPUWithoutToolkit(t *testing.T) {
	if _, err := os.Stat("/usr/bin/nvidia-container-runtime-hook"); err == nil {
		t.Fatal("this test needs a machine without the NVIDIA Container Toolkit")
	}
	img := probeImage(t)
	for _, tc := range []struct {
		name, gpu       string
		bypassPreflight bool
	}{
		{"Preflight", "GPU-4a6f5b0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", false},
		{"EngineError", "GPU-4a6f5b0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", true},
		{"CDIPreflight", "nvidia.com/gpu=0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rt := openRuntime(t, testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l")}))
			defer rt.Close()
			if tc.bypassPreflight {
				rt.BypassPreflight()
			}
			spec := runtime.Spec{
				JobID: "gpu-" + strings.ToLower(tc.name), Image: img, GPUs: []string{tc.gpu},
				Command: []string{"/probe", "write:/out/ran=1"}, OutputDir: filepath.Join(dir, "out"),
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			_, err := rt.Start(ctx, spec)
			if !errors.Is(err, runtime.ErrNoGPURuntime) {
				t.Fatalf("start = %v, want ErrNoGPURuntime", err)
			}
			for _, want := range []string{"NVIDIA Container Toolkit", "nvidia-ctk runtime configure --runtime=docker"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
			if tc.bypassPreflight && !strings.Contains(err.Error(), "could not select device driver") {
				t.Errorf("expected the engine's own error behind the sentinel: %v", err)
			}
			if _, err := os.Stat(filepath.Join(spec.OutputDir, "ran")); err == nil {
				t.Error("the job ran")
			}
			res, err := rt.Wait(ctx, spec.JobID)
			if err != nil || !strings.Contains(res.Error, "NVIDIA Container Toolkit") {
				t.Errorf("recorded result = %+v, %v; want the preflight error", res, err)
			}
		})
	}
}
