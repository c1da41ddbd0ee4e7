package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

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

// PreflightGPU checks, once per kind of request, that GPU jobs can run: that the engine
// starts a container with the real device request (a toolkit installed after dockerd
// started, or a UUID the toolkit does not know, fails here rather than in the first
// job), and that the toolkit and runc are at least the patched releases of Minimums.
// The error says what to fix.
func (r *Runtime) PreflightGPU(ctx context.Context, gpus []string) error {
	if r.bypassPreflight {
		return nil
	}
	byKind := map[string][]string{}
	for _, g := range gpus {
		if isCDI(g) {
			byKind["cdi"] = append(byKind["cdi"], g)
		} else {
			byKind["nvidia"] = append(byKind["nvidia"], g)
		}
	}
	r.preflightMu.Lock()
	defer r.preflightMu.Unlock()
	for kind, devices := range byKind {
		if r.preflightOK[kind] {
			continue
		}
		info, err := r.cli.Info(ctx)
		if err != nil {
			return fmt.Errorf("gpu preflight: docker info: %w", err)
		}
		if kind == "cdi" && len(info.CDISpecDirs) == 0 {
			return fmt.Errorf("gpu preflight: CDI devices requested but Docker Engine %s has CDI disabled (needs Docker ≥ 25 with CDI enabled and `nvidia-ctk cdi generate`): %w", info.ServerVersion, runtime.ErrNoGPURuntime)
		}
		if err := r.tryGPUs(ctx, devices); err != nil {
			return err
		}
		if err := r.checkGPUStack(ctx); err != nil {
			return err
		}
		r.preflightOK[kind] = true
	}
	return nil
}

// preflightEntrypoint does not exist in the preflight image: a container that gets as
// far as failing to run it got its GPUs.
const preflightEntrypoint = "/gpunode-preflight-no-such-file"

// tryGPUs starts a container with the device request a job would get, from an empty
// image. The engine selects its device driver and runs the toolkit's hooks, which attach
// the GPUs, before it looks for the entrypoint: failing to find it means the GPU path
// works, any earlier error that it does not.
func (r *Runtime) tryGPUs(ctx context.Context, devices []string) error {
	devs, err := deviceRequests(devices)
	if err != nil {
		return fmt.Errorf("gpu preflight: %w", err)
	}
	return r.tryContainer(ctx, devs)
}

func (r *Runtime) tryContainer(ctx context.Context, devs []container.DeviceRequest) error {
	img, err := r.preflightImage(ctx)
	if err != nil {
		return fmt.Errorf("gpu preflight: %w", err)
	}
	cfg := &container.Config{
		Image:           img,
		Entrypoint:      []string{preflightEntrypoint},
		Env:             gpuEnv(nil, devs),
		Labels:          map[string]string{LabelInstance: r.cfg.Instance, LabelPreflight: "gpu"},
		NetworkDisabled: true,
	}
	hc := &container.HostConfig{
		NetworkMode:    "none",
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Resources:      container.Resources{DeviceRequests: devs},
	}
	if len(devs) == 0 {
		hc.Runtime = runcRuntime
	}
	resp, err := r.cli.ContainerCreate(ctx, cfg, hc, nil, nil, "")
	if err != nil {
		return fmt.Errorf("gpu preflight: create container: %w", mapEngineError(err))
	}
	defer r.removeContainer(resp.ID)
	err = r.cli.ContainerStart(ctx, resp.ID, container.StartOptions{})
	switch {
	case err == nil, strings.Contains(err.Error(), preflightEntrypoint):
		return nil
	case errors.Is(mapEngineError(err), runtime.ErrNoGPURuntime):
		return fmt.Errorf("gpu preflight: %w; if the toolkit was installed after dockerd started, restart dockerd", mapEngineError(err))
	}
	return fmt.Errorf("gpu preflight: a container with %v did not start: %v: %w", devicesOf(devs), err, runtime.ErrNoGPURuntime)
}

func devicesOf(devs []container.DeviceRequest) []string {
	var out []string
	for _, d := range devs {
		out = append(out, d.DeviceIDs...)
	}
	return out
}

// preflightImage returns the ID of an image with nothing in it, imported once per
// instance: nothing needs to be pulled for the preflight.
func (r *Runtime) preflightImage(ctx context.Context) (string, error) {
	ref := "gpunode-preflight:" + r.cfg.Instance
	if ins, err := r.cli.ImageInspect(ctx, ref); err == nil {
		return ins.ID, nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777})
	tw.Close()
	rc, err := r.cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, ref, image.ImportOptions{})
	if err != nil {
		return "", fmt.Errorf("import empty image: %w", err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return "", fmt.Errorf("import empty image: %w", err)
	}
	ins, err := r.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("import empty image: %w", err)
	}
	return ins.ID, nil
}

// Component is one part of the GPU path (the toolkit, runc) as the preflight found it.
type Component struct {
	Name    string
	Version string
	// Minimum is the patched release (one per release branch, comma-separated).
	Minimum string
	OK      bool
	// Problem says what is wrong and how to fix it, when it is not OK.
	Problem string
}

// GPUStack is the GPU path's components as the last preflight found them.
func (r *Runtime) GPUStack() []Component {
	r.preflightMu.Lock()
	defer r.preflightMu.Unlock()
	return append([]Component(nil), r.gpuStack...)
}

// checkGPUStack reads the toolkit's and runc's versions and checks them against
// Minimums.
func (r *Runtime) checkGPUStack(ctx context.Context) error {
	var stack []Component
	var problems []error
	check := func(component, output string, err error) {
		c := Component{Name: component, Minimum: minimumText(component)}
		if err != nil {
			c.Problem = err.Error()
			problems = append(problems, err)
		} else if c.Version, err = CheckVersion(component, output); err != nil {
			c.Problem = err.Error()
			problems = append(problems, err)
		} else {
			c.OK = true
		}
		stack = append(stack, c)
	}
	out, err := r.toolkitVersion(ctx)
	check("nvidia-container-toolkit", out, err)
	out, err = r.runcVersion(ctx)
	check("runc", out, err)
	r.gpuStack = stack
	if len(problems) > 0 {
		return fmt.Errorf("gpu preflight: %w: %w", runtime.ErrGPURuntimeOutdated, errors.Join(problems...))
	}
	return nil
}

func minimumText(component string) string {
	var out []string
	for _, m := range Minimums {
		if m.Component == component {
			out = append(out, m.Version)
		}
	}
	return strings.Join(out, ", ")
}

// toolkitVersion asks the toolkit's tools for their version: nvidia-ctk, or the older
// nvidia-container-cli.
func (r *Runtime) toolkitVersion(ctx context.Context) (string, error) {
	if r.toolVersion != nil {
		return r.toolVersion("nvidia-container-toolkit")
	}
	var errs []error
	for _, tool := range []string{"nvidia-ctk", "nvidia-container-cli"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := exec.CommandContext(cctx, path, "--version").Output()
		cancel()
		if err == nil {
			return string(out), nil
		}
		errs = append(errs, fmt.Errorf("%s --version: %w", tool, err))
	}
	return "", fmt.Errorf("nvidia-container-toolkit: version unknown (%w); install the toolkit's nvidia-ctk", errors.Join(errs...))
}

// runcVersion is the runc the engine runs containers with, as the engine reports it.
func (r *Runtime) runcVersion(ctx context.Context) (string, error) {
	if r.toolVersion != nil {
		return r.toolVersion("runc")
	}
	v, err := r.cli.ServerVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("runc: docker version: %w", err)
	}
	for _, c := range v.Components {
		if strings.EqualFold(c.Name, "runc") {
			return c.Version, nil
		}
	}
	return "", fmt.Errorf("runc: Docker Engine %s does not report its runc version", v.Version)
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
