package runtime

import (
	"fmt"
	"strings"
)

// ReservedEnv says why a job may not set the environment variable name, or returns nil.
// Names are refused, not filtered, so that a manifest that asks for one is declined with
// the reason rather than run differently from what its author wrote:
//
//   - LD_*: the dynamic loader's variables (LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH…) reach
//     the NVIDIA Container Toolkit's createContainer hook, which runs on the host
//     (CVE-2025-23266), and change what every program of the job loads.
//   - NVIDIA_*: the toolkit reads them to choose the devices and driver capabilities a
//     container gets (NVIDIA_VISIBLE_DEVICES=all attaches every GPU of the rig); the node
//     sets them itself from the GPUs it allocated.
func ReservedEnv(name string) error {
	switch {
	case strings.HasPrefix(name, "LD_"):
		return fmt.Errorf("env %s: the dynamic loader's variables (LD_*) may not be set by a job; build them into the image instead (LD_PRELOAD and LD_AUDIT are refused there too)", name)
	case strings.HasPrefix(name, "NVIDIA_"):
		return fmt.Errorf("env %s: NVIDIA_* variables choose the GPUs and driver capabilities a container gets; the node sets them from the GPUs it allocates (ask for GPUs with resources.gpus)", name)
	}
	return nil
}
