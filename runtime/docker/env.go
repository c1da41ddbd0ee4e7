package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/gpunode/gpunode/runtime"
)

// imageEnvRefused are the variables an image's own config may not set: the NVIDIA
// Container Toolkit's createContainer hook ran with the image's environment, and an
// image setting LD_PRELOAD made it load the image's library on the host
// (CVE-2025-23266). LD_LIBRARY_PATH stays allowed: CUDA base images set it.
var imageEnvRefused = []string{"LD_PRELOAD", "LD_AUDIT"}

// checkImageEnv refuses an image whose config sets one of imageEnvRefused. The image is
// named by its ID, the same the container is created from, so that what was checked is
// what runs.
func (r *Runtime) checkImageEnv(ctx context.Context, imageID string) error {
	ins, err := r.cli.ImageInspect(ctx, imageID)
	if err != nil {
		return fmt.Errorf("image %s: inspect: %w", shortID(imageID), err)
	}
	if ins.Config == nil {
		return nil
	}
	return refuseImageEnv(ins.Config.Env)
}

// refuseImageEnv says which refused variable an image's environment sets, if any.
func refuseImageEnv(env []string) error {
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		for _, bad := range imageEnvRefused {
			if name == bad {
				return fmt.Errorf("%w: its config sets %s, which the NVIDIA Container Toolkit's hook would load on the host (CVE-2025-23266); remove it from the image's ENV", runtime.ErrImageRefused, name)
			}
		}
	}
	return nil
}

// runcRuntime is the engine's built-in OCI runtime: a job without GPUs runs on it even
// where an operator made the NVIDIA runtime dockerd's default, so that no hook of the
// toolkit sees the container.
const runcRuntime = "runc"

// gpuEnv returns the job's environment with the NVIDIA_* variables the node sets, which
// come after (and so win over) anything from the image's ENV:
// NVIDIA_VISIBLE_DEVICES=void for a CPU job (CUDA base images set it to "all", which
// the toolkit would honour), the allocated UUIDs for a GPU job; CDI devices are injected
// by the engine, so the toolkit's own selection is void for them too.
func gpuEnv(env []string, devs []container.DeviceRequest) []string {
	out := append([]string(nil), env...)
	var uuids []string
	for _, d := range devs {
		if d.Driver == "nvidia" {
			uuids = append(uuids, d.DeviceIDs...)
		}
	}
	if len(uuids) == 0 {
		return append(out, "NVIDIA_VISIBLE_DEVICES=void")
	}
	return append(out,
		"NVIDIA_VISIBLE_DEVICES="+strings.Join(uuids, ","),
		// Compute and nvidia-smi; no graphics, video or display libraries.
		"NVIDIA_DRIVER_CAPABILITIES=compute,utility")
}
