package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/docker"
	"github.com/gpunode/gpunode/runtime/gpu"
)

// GPUs is what the GPU checks read of the rig's NVML inventory (runtime/gpu).
type GPUs interface {
	Simulated() bool
	Driver() string
	CUDA() string
	Devices() []gpu.Device
	Healthy(i int) error
	PersistenceMode(i int) (bool, error)
	Allocatable() []string
}

// Fixes of the GPU checks.
const (
	FixNoDriver        = "to rent out GPUs, install the NVIDIA driver (Debian: apt install nvidia-driver firmware-misc-nonfree, or NVIDIA's CUDA repository), reboot, check with nvidia-smi, then restart gpunode; CPU jobs need nothing"
	FixDriverNotLoaded = "load the NVIDIA kernel module (modprobe nvidia) or reinstall the driver, then restart gpunode"
	FixDriverMismatch  = "reboot the rig (or reload the nvidia kernel modules) so that the kernel module and libnvidia-ml.so are the same version, then restart gpunode"
	FixNoPermission    = "run gpunode in the video group, or check the unit's DeviceAllow= rules against /proc/devices, then restart gpunode"
	FixNoGPUSeen       = "nvidia-smi should list the GPUs: check that they are seated and powered and that the driver supports them (dmesg | grep -i nvrm)"
	FixUnhealthyGPU    = "check the GPU with nvidia-smi -q -i INDEX and dmesg | grep -i xid; reset it (nvidia-smi -r -i INDEX) or reboot, and replace it if it fails again"
	FixPersistence     = "turn persistence mode on: systemctl enable --now nvidia-persistenced (or nvidia-smi -pm 1, lost at reboot)"
	FixToolkitMissing  = "install the NVIDIA Container Toolkit (apt install nvidia-container-toolkit from NVIDIA's repository), run nvidia-ctk runtime configure --runtime=docker, and restart dockerd"
	FixGPUContainer    = "install the NVIDIA Container Toolkit, run nvidia-ctk runtime configure --runtime=docker, and restart dockerd (systemctl restart docker); docker run --rm --gpus all IMAGE nvidia-smi shows the same error"
	FixCDISpec         = "generate the spec: nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml (again after every driver upgrade)"
)

// CDIDirs are the folders CDI specs live in.
var CDIDirs = []string{"/etc/cdi", "/var/run/cdi"}

// NVIDIA checks the driver and NVML: openErr is how opening the inventory failed.
// Without a driver the rig runs CPU-only, which is a warning, not a failure.
func NVIDIA(g GPUs, openErr error) Result {
	const name = "nvidia-driver"
	if openErr != nil {
		res := Result{Name: name, Status: Fail, Detail: openErr.Error()}
		switch {
		case errors.Is(openErr, gpu.ErrNoDriver):
			res.Status, res.Fix = Warn, FixNoDriver
		case errors.Is(openErr, nvml.ERROR_DRIVER_NOT_LOADED):
			res.Fix = FixDriverNotLoaded
		case errors.Is(openErr, nvml.ERROR_LIB_RM_VERSION_MISMATCH):
			res.Fix = FixDriverMismatch
		case errors.Is(openErr, nvml.ERROR_NO_PERMISSION):
			res.Fix = FixNoPermission
		default:
			res.Fix = "check the driver with nvidia-smi; " + FixDriverNotLoaded
		}
		return res
	}
	devs := g.Devices()
	if len(devs) == 0 {
		return Result{Name: name, Status: Warn, Detail: fmt.Sprintf("driver %s loaded but NVML sees no GPU: running CPU-only", g.Driver()), Fix: FixNoGPUSeen}
	}
	var bad []string
	for _, d := range devs {
		if err := g.Healthy(d.Index); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%d of %d GPUs out of service: %s", len(bad), len(devs), strings.Join(bad, "; ")), Fix: FixUnhealthyGPU}
	}
	kind := ""
	if g.Simulated() {
		kind = " (simulated rig)"
	}
	var mig int
	for _, d := range devs {
		if d.MIG {
			mig++
		}
	}
	detail := fmt.Sprintf("driver %s, CUDA %s, %d× %s%s", g.Driver(), g.CUDA(), len(devs), devs[0].Name, kind)
	if mig > 0 {
		detail += fmt.Sprintf("; %d in MIG mode (%d instances handed to jobs)", mig, len(g.Allocatable()))
	}
	return ok(name, "%s", detail)
}

// cpuOnly is the skip reason of the checks that only matter with GPUs.
const cpuOnly = "no GPU (CPU-only rig): not needed"

// Persistence checks that every GPU has persistence mode on.
func Persistence(g GPUs, openErr error) Result {
	const name = "persistence-mode"
	if openErr != nil || len(g.Devices()) == 0 {
		return skip(name, cpuOnly)
	}
	var off, unknown []string
	on := 0
	for _, d := range g.Devices() {
		enabled, err := g.PersistenceMode(d.Index)
		switch {
		case errors.Is(err, gpu.ErrUnsupported):
		case err != nil:
			unknown = append(unknown, err.Error())
		case enabled:
			on++
		default:
			off = append(off, fmt.Sprint(d.Index))
		}
	}
	switch {
	case len(off) > 0:
		return Result{Name: name, Status: Warn, Detail: "persistence mode is off on GPU " + strings.Join(off, ", ") + ": each job's first CUDA call waits for the driver to set the GPU up again", Fix: FixPersistence}
	case len(unknown) > 0:
		return Result{Name: name, Status: Warn, Detail: "persistence mode unreadable: " + strings.Join(unknown, "; "), Fix: FixPersistence}
	case on == 0:
		return skip(name, "no GPU reports persistence mode (not supported)")
	}
	return ok(name, "on for %d of %d GPUs", on, len(g.Devices()))
}

// VersionReader reads the version output of a GPU-path component (runtime/docker).
type VersionReader interface {
	ComponentVersion(ctx context.Context, component string) (string, error)
}

// Toolkit checks that the NVIDIA Container Toolkit is installed and patched, on a rig
// with GPUs.
func Toolkit(ctx context.Context, v VersionReader, gpus []string) Result {
	const name, component = "container-toolkit", "nvidia-container-toolkit"
	if len(gpus) == 0 {
		return skip(name, cpuOnly)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	out, err := v.ComponentVersion(ctx, component)
	if err != nil {
		return Result{Name: name, Status: Fail, Detail: err.Error(), Fix: FixToolkitMissing}
	}
	return versionResult(name, component, out, Fail)
}

// Runc checks the runc the engine runs containers with against the patched releases.
// GPU jobs are refused with an unpatched one (a failure on a GPU rig); CPU jobs still
// run with it (a warning).
func Runc(ctx context.Context, v VersionReader, gpus []string, engineErr error) Result {
	const name, component = "runc", "runc"
	if engineErr != nil {
		return skip(name, "the Docker Engine does not answer (see the docker check)")
	}
	outdated := Warn
	if len(gpus) > 0 {
		outdated = Fail
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	out, err := v.ComponentVersion(ctx, component)
	if err != nil {
		return Result{Name: name, Status: outdated, Detail: err.Error(), Fix: upgradeFix(component)}
	}
	return versionResult(name, component, out, outdated)
}

func versionResult(name, component, out string, outdated Status) Result {
	version, err := docker.CheckVersion(component, out)
	if err != nil {
		// CheckVersion's error ends with the upgrade advice: the fix says it.
		detail, _, _ := strings.Cut(err.Error(), ": upgrade ")
		return Result{Name: name, Status: outdated, Detail: detail, Fix: upgradeFix(component)}
	}
	return ok(name, "%s %s (patched)", component, version)
}

func upgradeFix(component string) string {
	var mins []string
	for _, m := range docker.Minimums {
		if m.Component == component {
			if m.Branch == "" {
				mins = append(mins, m.Version)
			} else {
				mins = append(mins, m.Version+" on "+m.Branch+".x")
			}
		}
	}
	return fmt.Sprintf("upgrade %s to %s or later (or a distribution package that carries the fixes), then restart dockerd", component, strings.Join(mins, ", "))
}

// GPUStarter starts a container with a GPU device request (runtime/docker).
type GPUStarter interface {
	TryGPUs(ctx context.Context, devices []string) error
}

// GPUContainer starts a container with the device request a job on every GPU would
// get: the toolkit, its hooks and the engine's configuration together.
func GPUContainer(ctx context.Context, s GPUStarter, gpus []string, engineErr error) Result {
	const name = "gpu-container"
	if len(gpus) == 0 {
		return skip(name, cpuOnly)
	}
	if engineErr != nil {
		return skip(name, "the Docker Engine does not answer (see the docker check)")
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	if err := s.TryGPUs(ctx, gpus); err != nil {
		res := Result{Name: name, Status: Fail, Detail: err.Error(), Fix: FixGPUContainer}
		if !errors.Is(err, runtime.ErrNoGPURuntime) {
			res.Fix = "read the engine's error above; " + FixGPUContainer
		}
		return res
	}
	return ok(name, "a container started with %d GPUs (%s)", len(gpus), strings.Join(gpus, ", "))
}

// CDISpec looks for an NVIDIA CDI spec in dirs.
func CDISpec(dirs []string, gpus []string) Result {
	const name = "cdi-spec"
	if len(gpus) == 0 {
		return skip(name, cpuOnly)
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); ext != ".yaml" && ext != ".yml" && ext != ".json" {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "nvidia.com/gpu") {
				return ok(name, "NVIDIA CDI spec at %s", p)
			}
		}
	}
	return Result{Name: name, Status: Warn, Detail: "no NVIDIA CDI spec in " + strings.Join(dirs, " or ") + ": jobs get GPUs through --gpus, not CDI names", Fix: FixCDISpec}
}
