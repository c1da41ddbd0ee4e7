package docker

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/gpunode/gpunode/runtime"
)

// isCDI tells CDI device names (vendor.com/class=name) from NVIDIA GPU UUIDs.
func isCDI(dev string) bool { return strings.Contains(dev, "/") && strings.Contains(dev, "=") }

// deviceRequests asks the engine for exactly the listed GPUs: UUIDs through the
// nvidia driver, CDI names through the cdi driver. Never Count, never "all".
func deviceRequests(gpus []string) ([]container.DeviceRequest, error) {
	var uuids, cdi []string
	for _, g := range gpus {
		switch {
		case isCDI(g):
			cdi = append(cdi, g)
		case strings.HasPrefix(g, "GPU-") || strings.HasPrefix(g, "MIG-"):
			uuids = append(uuids, g)
		default:
			return nil, fmt.Errorf("gpu %q: want a GPU UUID (GPU-…, MIG-…) or a CDI name (nvidia.com/gpu=…)", g)
		}
	}
	var reqs []container.DeviceRequest
	if len(uuids) > 0 {
		reqs = append(reqs, container.DeviceRequest{Driver: "nvidia", DeviceIDs: uuids, Capabilities: [][]string{{"gpu"}}})
	}
	if len(cdi) > 0 {
		reqs = append(reqs, container.DeviceRequest{Driver: "cdi", DeviceIDs: cdi})
	}
	return reqs, nil
}

// PreflightGPU checks, once per kind of request, that the engine can attach the GPUs
// at all, so that a rig without the NVIDIA Container Toolkit says so before the first
// GPU job instead of failing every job obscurely.
func (r *Runtime) PreflightGPU(ctx context.Context, gpus []string) error {
	if r.bypassPreflight {
		return nil
	}
	kinds := map[string]bool{}
	for _, g := range gpus {
		if isCDI(g) {
			kinds["cdi"] = true
		} else {
			kinds["nvidia"] = true
		}
	}
	r.preflightMu.Lock()
	defer r.preflightMu.Unlock()
	for kind := range kinds {
		if r.preflightOK[kind] {
			continue
		}
		info, err := r.cli.Info(ctx)
		if err != nil {
			return fmt.Errorf("gpu preflight: docker info: %w", err)
		}
		switch kind {
		case "nvidia":
			// dockerd registers its "nvidia" device driver when it finds the toolkit's
			// hook; a configured toolkit also adds the "nvidia" runtime.
			_, hasRuntime := info.Runtimes["nvidia"]
			_, hookErr := exec.LookPath("nvidia-container-runtime-hook")
			if !hasRuntime && hookErr != nil {
				return fmt.Errorf("gpu preflight: %w (docker info lists no nvidia runtime and nvidia-container-runtime-hook is not in PATH)", runtime.ErrNoGPURuntime)
			}
		case "cdi":
			if len(info.CDISpecDirs) == 0 {
				return fmt.Errorf("gpu preflight: CDI devices requested but Docker Engine %s has CDI disabled (needs Docker ≥ 25 with CDI enabled and `nvidia-ctk cdi generate`): %w", info.ServerVersion, runtime.ErrNoGPURuntime)
			}
		}
		r.preflightOK[kind] = true
	}
	return nil
}

// mapEngineError turns the engine's error texts that callers must act on into this
// package's sentinels; the engine reports them only as strings.
func mapEngineError(err error) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "could not select device driver"):
		return fmt.Errorf("%w (engine: %v)", runtime.ErrNoGPURuntime, err)
	case strings.Contains(s, "unknown or invalid runtime name: nvidia"):
		return fmt.Errorf("%w (engine: %v)", runtime.ErrNoGPURuntime, err)
	}
	return err
}
